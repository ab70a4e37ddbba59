"""Bybit v5 private REST: signed requests, recv_window and clock sync, retries only where repeating is safe.

Retried: connection failures, HTTP 5xx/403/429 and Bybit's busy codes. Repeating an order create is safe because
its orderLinkId makes it idempotent (a second create is refused as a duplicate, 110072); cancels are idempotent.
A timestamp refusal (10002) means nothing was done: the clock offset is re-read from `/v5/market/time` and the
request signed again, once. Refused credentials raise at once: no retry can help. Every text taken from a reply
is scrubbed of the credentials before it goes anywhere (Bybit's 10004 message echoes the key).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from streams.bybit.private_parse import Envelope, OrderParams, parse_envelope
from streams.bybit.rest import RETRYABLE_RET_CODES
from streams.bybit.signing import Credentials, rest_headers
from streams.http import RestError, TransientHttpError, http_request
from streams.venue import ParseError

__all__ = [
    "AUTH_RET_CODES", "CLOCK_RET_CODE", "DUPLICATE_ORDER_LINK_ID", "ORDER_GONE_RET_CODES", "AuthRefusedError",
    "BybitApiError", "BybitPrivateRest", "ClockSkewError", "PrivateRestConfig", "Reply", "wall_ms",
]

log = logging.getLogger(__name__)

CLOCK_RET_CODE = 10002  # the request time exceeds the time window range
AUTH_RET_CODES = frozenset({10003, 10004, 10005, 10007, 10009, 10010, 33004})  # key, sign, permission, IP, expiry
DUPLICATE_ORDER_LINK_ID = 110072  # "OrderLinkedID is duplicate": the order was placed before
ORDER_GONE_RET_CODES = frozenset({110001, 110008, 110010})  # does not exist / completed or cancelled / cancelled
# and "Server Timeout", and "the order is processing ... please try again later" (a cancel racing the engine)
_TRANSIENT_RET_CODES = RETRYABLE_RET_CODES | {10000, 110079}
_TRANSIENT_HTTP = (403, 429)  # Bybit's IP limit and its system-level frequency protection


class BybitApiError(RestError):
    """Bybit answered with a retCode the caller cannot turn into an order event."""

    def __init__(self, path: str, code: int, message: str) -> None:
        super().__init__(f"{path}: retCode {code}: {message}")
        self.code = code


class AuthRefusedError(BybitApiError):
    """The key, its signature, its permissions or its IP binding were refused; trading cannot go on."""


class ClockSkewError(BybitApiError):
    """Timestamps stay outside Bybit's window after re-reading its clock: check the host clock or recv_window."""


@dataclass(frozen=True, kw_only=True)
class PrivateRestConfig:
    """Durations in seconds unless the name says ms."""

    base_url: str = "https://api.bybit.com"
    category: str = "linear"
    recv_window_ms: int = 5000  # Bybit's default; a request arriving later than this is refused (10002)
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Reply:
    path: str
    envelope: Envelope  # retMsg already scrubbed of the credentials
    ts_recv_ns: int


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class BybitPrivateRest:
    """Signed calls to Bybit's private endpoints; `now_ms` is the local clock corrected to Bybit's."""

    def __init__(self, credentials: Credentials, config: PrivateRestConfig | None = None,
                 clock_ms: Callable[[], int] = wall_ms) -> None:
        self.config = config or PrivateRestConfig()
        self._credentials = credentials
        self._clock_ms = clock_ms
        self.offset_ms = 0  # Bybit's clock minus ours, from the last sync
        self.requests = 0  # signed requests sent, retries included

    def now_ms(self) -> int:
        return self._clock_ms() + self.offset_ms

    async def sync_time(self) -> int:
        """Re-read Bybit's clock (`/v5/market/time`, unsigned); the offset assumes a symmetric round trip."""
        before = self._clock_ms()
        try:
            reply = await asyncio.to_thread(http_request, "GET", f"{self.config.base_url}/v5/market/time",
                                            timeout_s=self.config.timeout_s, transient_codes=_TRANSIENT_HTTP)
        except TransientHttpError as exc:
            raise RestError(f"GET /v5/market/time: {exc}") from exc
        after = self._clock_ms()
        envelope = parse_envelope(reply.body.decode(), "/v5/market/time")
        nano = envelope.result.get("timeNano")
        server_ms = int(nano) // 1_000_000 if nano else envelope.time_ms
        self.offset_ms = server_ms - (before + after) // 2
        return self.offset_ms

    async def create(self, params: OrderParams) -> Reply:
        return await self.post("/v5/order/create", params.body(self.config.category))

    async def cancel(self, symbol: str, order_link_id: str) -> Reply:
        body = {"category": self.config.category, "symbol": symbol, "orderLinkId": order_link_id}
        return await self.post("/v5/order/cancel", body)

    async def cancel_all(self, symbol: str | None, settle_coin: str) -> Reply:
        """Linear cancel-all needs a symbol or a settle coin (Bybit refuses a call with neither)."""
        scope = {"symbol": symbol} if symbol else {"settleCoin": settle_coin}
        return await self.post("/v5/order/cancel-all", {"category": self.config.category, **scope})

    async def find_order(self, symbol: str, order_link_id: str) -> dict[str, Any] | None:
        """The order's record among open orders, else among the recent closed ones (Bybit keeps 500)."""
        for open_only in ("0", "1"):
            reply = await self.get("/v5/order/realtime", {"category": self.config.category, "symbol": symbol,
                                                          "orderLinkId": order_link_id, "openOnly": open_only})
            if reply.envelope.ret_code != 0:
                raise BybitApiError(reply.path, reply.envelope.ret_code, reply.envelope.ret_msg)
            items = reply.envelope.result.get("list") or []
            if items:
                return dict(items[0])
        return None

    async def post(self, path: str, body: dict[str, Any]) -> Reply:
        return await self._signed("POST", path, json.dumps(body, separators=(",", ":")))

    async def get(self, path: str, params: dict[str, str]) -> Reply:
        return await self._signed("GET", path, urllib.parse.urlencode(params))

    async def _signed(self, method: str, path: str, payload: str) -> Reply:
        """Bybit's answer, whatever its retCode, except refused credentials and a clock that cannot be fixed."""
        reply = await self._with_retries(method, path, payload)
        if reply.envelope.ret_code == CLOCK_RET_CODE:
            log.warning("%s %s: Bybit refused the timestamp (%s); re-reading its clock", method, path,
                        reply.envelope.ret_msg)
            offset = await self.sync_time()
            log.info("clock offset to Bybit now %d ms", offset)
            reply = await self._with_retries(method, path, payload)
        code, message = reply.envelope.ret_code, reply.envelope.ret_msg
        if code == CLOCK_RET_CODE:
            raise ClockSkewError(path, code, f"{message} (recv_window {self.config.recv_window_ms} ms, "
                                             f"offset {self.offset_ms} ms: check the host clock)")
        if code in AUTH_RET_CODES:
            raise AuthRefusedError(path, code, message)
        return reply

    async def _with_retries(self, method: str, path: str, payload: str) -> Reply:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientHttpError), stop=stop_after_attempt(self.config.attempts),
            wait=wait_exponential_jitter(multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s,
                                         jitter=self.config.backoff_initial_s),
            before_sleep=self._log_retry, reraise=True,
        )
        try:
            return await retrying(self._once, method, path, payload)
        except TransientHttpError as exc:
            message = f"{method} {path} failed {self.config.attempts} times ({exc}); its outcome is unknown"
            raise RestError(message) from exc

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s %s: attempt %d failed (%s); retrying", state.args[0], state.args[1], state.attempt_number,
                    error)

    async def _once(self, method: str, path: str, payload: str) -> Reply:
        # signed per attempt: a retry carries a fresh timestamp
        headers = rest_headers(self._credentials, self.now_ms(), self.config.recv_window_ms, payload)
        url = f"{self.config.base_url}{path}"
        if method == "GET" and payload:
            url = f"{url}?{payload}"
        self.requests += 1
        reply = await asyncio.to_thread(
            http_request, method, url, headers={**headers, "Content-Type": "application/json"},
            body=payload.encode() if method == "POST" else None, timeout_s=self.config.timeout_s,
            transient_codes=_TRANSIENT_HTTP, redact=self._credentials.redact)
        try:
            envelope = parse_envelope(reply.body.decode(), path)
        except ParseError as exc:
            raise RestError(self._credentials.redact(f"{method} {path}: {exc}")) from None
        envelope = replace(envelope, ret_msg=self._credentials.redact(envelope.ret_msg))
        if envelope.ret_code in _TRANSIENT_RET_CODES:
            raise TransientHttpError(f"retCode {envelope.ret_code}: {envelope.ret_msg}")
        return Reply(path, envelope, time.time_ns())
