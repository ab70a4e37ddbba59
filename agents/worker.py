"""`liqbot agents worker`: one Faust worker process of the agents app."""

from __future__ import annotations

import logging
from typing import NoReturn

import faust

from agents.app import AgentOptions, build_app
from liqbot.config import Settings

__all__ = ["run_worker"]


def run_worker(settings: Settings, options: AgentOptions, *, loglevel: str = "warning") -> NoReturn:
    """Blocks until SIGTERM/SIGINT; Faust's worker then stops the reader, which saves and hands over its partitions."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings, options)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    logging.getLogger("faust").setLevel(loglevel.upper())
    worker.execute_from_commandline()
