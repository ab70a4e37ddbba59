"""Bybit v5 public REST: GET with retries and Bybit's rate-limit headers honoured; replies stay raw text."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from streams.http import RestError, TransientHttpError, http_request

__all__ = ["RETRYABLE_RET_CODES", "BybitRest", "RestError", "RestReply"]

log = logging.getLogger(__name__)

RETRYABLE_RET_CODES = {10006, 10016}  # too many visits; service busy / restarting


@dataclass(frozen=True)
class RestReply:
    url: str
    text: str
    ts_recv_ns: int


@dataclass
class BybitRest:
    base_url: str = "https://api.bybit.com"
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
    _resume_at_ms: int = 0  # from X-Bapi-Limit-Reset-Timestamp when the window is used up

    def instruments(self, category: str, symbol: str | None = None) -> RestReply:
        params = {"category": category, "limit": "1000", **({"symbol": symbol} if symbol else {})}
        return self.get("/v5/market/instruments-info", params)

    def open_interest(self, category: str, symbol: str, interval: str = "5min", limit: int = 200) -> RestReply:
        params = {"category": category, "symbol": symbol, "intervalTime": interval, "limit": str(limit)}
        return self.get("/v5/market/open-interest", params)

    def funding_history(self, category: str, symbol: str, limit: int = 200) -> RestReply:
        return self.get("/v5/market/funding/history", {"category": category, "symbol": symbol, "limit": str(limit)})

    def get(self, path: str, params: dict[str, str]) -> RestReply:
        """The reply of a GET whose retCode is 0; retries transient failures with backoff and jitter."""
        try:
            return self._get(path, params)
        except TransientHttpError as exc:
            raise RestError(f"GET {path} failed after retries: {exc}") from exc

    @retry(retry=retry_if_exception_type(TransientHttpError), stop=stop_after_attempt(5),
           wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2), reraise=True)
    def _get(self, path: str, params: dict[str, str]) -> RestReply:
        self._respect_limit()
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        # Bybit answers 403 when an IP exceeds its limit
        reply = http_request("GET", url, timeout_s=self.timeout_s, transient_codes=(403, 429),
                             on_headers=self._note_limit)
        return self._checked(url, reply.body.decode())

    def _checked(self, url: str, text: str) -> RestReply:
        try:
            code = json.loads(text).get("retCode")
        except ValueError as exc:
            raise RestError(f"GET {url}: reply is not JSON: {text[:200]!r}") from exc
        if code in RETRYABLE_RET_CODES:
            raise TransientHttpError(f"retCode {code}")
        if code != 0:
            raise RestError(f"GET {url}: retCode {code}: {json.loads(text).get('retMsg')}")
        return RestReply(url, text, time.time_ns())

    def _note_limit(self, headers: Message) -> None:
        remaining, reset = headers.get("X-Bapi-Limit-Status"), headers.get("X-Bapi-Limit-Reset-Timestamp")
        if remaining is not None and reset is not None and int(remaining) <= 0:
            self._resume_at_ms = int(reset)

    def _respect_limit(self) -> None:
        wait_ms = self._resume_at_ms - self.clock_ms()
        if wait_ms > 0:
            log.info("Bybit rate limit window used up: waiting %d ms", wait_ms)
            self.sleep(wait_ms / 1000)
        self._resume_at_ms = 0
