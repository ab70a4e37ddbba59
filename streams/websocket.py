"""A WebSocket that stays up: connect, hand over every message, reconnect on close, error or silence.

Venue clients supply what happens when a connection opens (subscribe, fetch snapshots), what happens to a
message, and an optional keepalive; the loop, backoff with jitter (tenacity) and counting live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential_jitter,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import LoggerLike

from streams.metrics import RECONNECTS

__all__ = ["ReconnectPolicy", "ReconnectingSocket"]

log = logging.getLogger(__name__)

Hook = Callable[[ClientConnection], Coroutine[Any, Any, None]]
OnMessage = Callable[[ClientConnection, str, int], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ReconnectPolicy:
    """Durations in seconds."""

    silence_timeout_s: float = 30.0  # no message at all for this long: the connection is dead
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_connect_attempts: int | None = None  # None: retry forever


class _ConnectError(Exception):
    """No connection could be opened (refused, handshake failed, timed out)."""


@dataclass
class ReconnectingSocket:
    url: str
    venue: str
    policy: ReconnectPolicy
    on_open: Hook
    on_message: OnMessage
    keepalive: Hook | None = None  # runs beside the reader, cancelled when the connection ends
    # what the websockets library logs to (every frame at DEBUG); None: its own `websockets.client` logger
    ws_logger: LoggerLike | None = None
    reconnects: int = 0
    last_message_ns: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; a connection that streamed and ended reconnects at once, failures back off."""
        while not stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(_ConnectError), reraise=True,
                wait=wait_exponential_jitter(multiplier=self.policy.backoff_initial_s, max=self.policy.backoff_max_s),
                stop=stop_after_attempt(self.policy.max_connect_attempts) if self.policy.max_connect_attempts
                else stop_never,
                before_sleep=self._log_retry,
            )
            async for attempt in retrying:
                with attempt:
                    await self._session(stop)
            if not stop.is_set():
                self.reconnects += 1
                RECONNECTS.labels(self.venue).inc()

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("connect to %s failed (attempt %d): %s", self.url, state.attempt_number, error)

    async def _session(self, stop: asyncio.Event) -> None:
        try:
            ws = await connect(self.url, ping_interval=None, max_size=2**24, open_timeout=10, logger=self.ws_logger)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _ConnectError(str(exc)) from exc
        keepalive: asyncio.Task[None] | None = asyncio.create_task(self.keepalive(ws)) if self.keepalive else None
        try:
            await self.on_open(ws)
            await self._read(ws, stop)
        except ConnectionClosed as exc:
            log.warning("connection to %s closed: %s; reconnecting", self.url, exc)
        except TimeoutError:
            log.warning("nothing from %s for %.0fs; reconnecting", self.url, self.policy.silence_timeout_s)
        finally:
            if keepalive is not None:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await keepalive
            await ws.close()

    async def _read(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                receiving = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait({receiving, stopping}, timeout=self.policy.silence_timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if receiving not in done:
                    receiving.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await receiving
                    if stop.is_set():
                        return
                    raise TimeoutError
                message = receiving.result()
                self.last_message_ns = time.time_ns()
                text = message if isinstance(message, str) else message.decode("utf-8", errors="replace")
                await self.on_message(ws, text, self.last_message_ns)
        finally:
            stopping.cancel()
