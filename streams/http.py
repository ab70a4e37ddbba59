"""One HTTP GET attempt for the venue REST clients: transient failures told apart from refusals."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from email.message import Message

from liqbot.errors import LiqbotError

__all__ = ["RestError", "TransientHttpError", "http_get"]


class RestError(LiqbotError):
    """A REST call that kept failing or was refused for good."""


class TransientHttpError(Exception):
    """Worth retrying: connection trouble, HTTP 5xx, or the venue's slow-down answer."""


def http_get(url: str, *, timeout_s: float, transient_codes: Collection[int],
             on_headers: Callable[[Message], None] | None = None) -> str:
    """The body of one GET; `on_headers` sees the headers of answers and refusals alike (rate limits)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            if on_headers is not None:
                on_headers(resp.headers)
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        if on_headers is not None:
            on_headers(exc.headers)
        if exc.code >= 500 or exc.code in transient_codes:
            raise TransientHttpError(f"HTTP {exc.code}") from exc
        raise RestError(f"GET {url}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TransientHttpError(str(exc)) from exc
