"""The root of every error this project raises on purpose."""


class LiqbotError(Exception):
    """Base of the project's own errors; the CLI prints these without a traceback."""
