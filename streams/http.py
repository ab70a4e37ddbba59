"""One HTTP request attempt for the venue REST clients: transient failures told apart from refusals."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from email.message import Message

from liqbot.errors import LiqbotError

__all__ = ["HttpReply", "RestError", "TransientHttpError", "http_request"]

_DETAIL_CHARS = 300  # of a refusal's body, in its error message


class RestError(LiqbotError):
    """A REST call that kept failing or was refused for good."""


class TransientHttpError(Exception):
    """Worth retrying: connection trouble, HTTP 5xx, or the venue's slow-down answer."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int  # 2xx: anything else raised
    headers: Message
    body: bytes


def http_request(method: str, url: str, *, timeout_s: float, transient_codes: Collection[int],
                 headers: Mapping[str, str] | None = None, body: bytes | None = None,
                 on_headers: Callable[[Message], None] | None = None,
                 redact: Callable[[str], str] | None = None) -> HttpReply:
    """One request. Connection failures, HTTP 5xx and `transient_codes` raise TransientHttpError; any other refusal
    raises RestError with the start of its body. `on_headers` sees the headers of answers and refusals alike (rate
    limits). `redact` scrubs every text taken from the reply before it goes into an error, and then the urllib
    error is not chained either (its text, such as the status line's reason, comes unscrubbed from the server)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
    scrub = redact or _unchanged
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            if on_headers is not None:
                on_headers(resp.headers)
            return HttpReply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        cause = None if redact else exc
        if on_headers is not None:
            on_headers(exc.headers)
        if exc.code >= 500 or exc.code in transient_codes:
            raise TransientHttpError(f"HTTP {exc.code}") from cause
        detail = scrub(exc.read().decode(errors="replace"))[:_DETAIL_CHARS]  # scrubbed whole: no key cut in two
        raise RestError(scrub(f"{method} {url}: HTTP {exc.code}: {detail!r}")) from cause
    except (urllib.error.URLError, OSError) as exc:
        raise TransientHttpError(scrub(str(exc))) from (None if redact else exc)


def _unchanged(text: str) -> str:
    return text
