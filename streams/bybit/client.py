"""Bybit v5 public WebSocket client: sockets, subscriptions, pings, silence and reconnects; nothing else.

Frames go, with their local receive time, to a callback (the shared ingest path); parsing lives in parse.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

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

from streams.bybit.parse import BybitPublicParser
from streams.ingest import FrameOutcome
from streams.metrics import RECONNECTS
from streams.venue import FrameParser

__all__ = ["PUBLIC_URLS", "BybitPublicClient", "BybitStreamConfig", "topics_for"]

log = logging.getLogger(__name__)

PUBLIC_URLS = {"bybit-linear": "wss://stream.bybit.com/v5/public/linear",
               "bybit-spot": "wss://stream.bybit.com/v5/public/spot"}

OnFrame = Callable[[FrameParser, str, int, str], FrameOutcome]


@dataclass(frozen=True, kw_only=True)
class BybitStreamConfig:
    """One public connection. Durations in seconds."""

    symbols: tuple[str, ...]
    venue: str = "bybit-linear"
    url: str = PUBLIC_URLS["bybit-linear"]
    book_depth: int = 50
    kline: bool = False
    ping_interval_s: float = 20.0  # Bybit drops a connection without a ping for about 30 s
    silence_timeout_s: float = 30.0  # no frame at all, pongs included: the connection is dead
    args_per_request: int = 10  # Bybit's limit of topics per subscribe request (spot); linear takes it too
    topics_per_connection: int = 200  # above this, run several clients
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_connect_attempts: int | None = None  # None: retry forever


def topics_for(config: BybitStreamConfig) -> list[str]:
    channels = ["allLiquidation", "publicTrade", f"orderbook.{config.book_depth}", "tickers"]
    if config.kline:
        channels.append("kline.1")
    return [f"{channel}.{symbol}" for symbol in config.symbols for channel in channels]


class _ConnectError(Exception):
    """No session could be established (refused, handshake failed, dropped before subscribing)."""


@dataclass
class BybitPublicClient:
    config: BybitStreamConfig
    on_frame: OnFrame
    recorder: Callable[[str, int], None] | None = None  # every received text with its receive time
    reconnects: int = 0
    last_frame_ns: int = 0  # local receive time of the latest frame
    failed_subscriptions: list[str] = field(default_factory=list)
    _req_ids: count[int] = field(default_factory=count)

    def __post_init__(self) -> None:
        self.topics = topics_for(self.config)
        if len(self.topics) > self.config.topics_per_connection:
            raise ValueError(f"{len(self.topics)} topics exceed {self.config.topics_per_connection} per connection;"
                             " split the symbols over several connections")

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until `stop` is set; every drop or silence reconnects, with backoff while connecting fails."""
        while not stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(_ConnectError), reraise=True,
                wait=wait_exponential_jitter(multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s),
                stop=stop_after_attempt(self.config.max_connect_attempts) if self.config.max_connect_attempts
                else stop_never,
                before_sleep=self._log_retry,
            )
            async for attempt in retrying:
                with attempt:
                    await self._session(stop)
            if not stop.is_set():
                self.reconnects += 1
                RECONNECTS.labels(self.config.venue).inc()

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("connect to %s failed (attempt %d): %s", self.config.url, state.attempt_number, error)

    async def _session(self, stop: asyncio.Event) -> None:
        """One connection: returns when it ends after having streamed; raises if it never got going."""
        try:
            ws = await connect(self.config.url, ping_interval=None, max_size=2**24, open_timeout=10)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _ConnectError(str(exc)) from exc
        parser = BybitPublicParser(self.config.venue)
        source = f"{self.config.venue}:{self.config.url}"
        pinger = asyncio.create_task(self._ping(ws))
        try:
            await self._subscribe(ws, self.topics)
            await self._stream(ws, parser, source, stop)
        except ConnectionClosed as exc:
            log.warning("connection to %s closed: %s; reconnecting", self.config.url, exc)
        except TimeoutError:
            log.warning("no frame from %s for %.0fs; reconnecting", self.config.url, self.config.silence_timeout_s)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await pinger
            await ws.close()

    async def _stream(self, ws: ClientConnection, parser: FrameParser, source: str, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                receiving = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait({receiving, stopping}, timeout=self.config.silence_timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if receiving not in done:
                    receiving.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await receiving
                    if stop.is_set():
                        return
                    raise TimeoutError
                await self._handle(ws, parser, receiving.result(), source)
        finally:
            stopping.cancel()

    async def _handle(self, ws: ClientConnection, parser: FrameParser, message: str | bytes, source: str) -> None:
        ts_recv_ns = self.last_frame_ns = time.time_ns()
        text = message if isinstance(message, str) else message.decode("utf-8", errors="replace")
        if self.recorder is not None:
            self.recorder(text, ts_recv_ns)
        if '"op"' in text[:300]:
            self._check_ack(text)
        outcome = self.on_frame(parser, text, ts_recv_ns, source)
        if outcome.resync_topic:
            log.warning("book gap on %s: resubscribing for a fresh snapshot", outcome.resync_topic)
            await self._send(ws, "unsubscribe", [outcome.resync_topic])
            await self._send(ws, "subscribe", [outcome.resync_topic])

    def _check_ack(self, text: str) -> None:
        try:
            reply = json.loads(text)
        except ValueError:
            return  # the ingest path dead-letters it
        if reply.get("op") == "subscribe" and reply.get("success") is False:
            self.failed_subscriptions.append(str(reply.get("ret_msg")))
            log.error("subscription refused by %s: %s", self.config.url, reply.get("ret_msg"))

    async def _subscribe(self, ws: ClientConnection, topics: list[str]) -> None:
        step = self.config.args_per_request
        for i in range(0, len(topics), step):
            await self._send(ws, "subscribe", topics[i:i + step])

    async def _send(self, ws: ClientConnection, op: str, args: list[str]) -> None:
        await ws.send(json.dumps({"req_id": str(next(self._req_ids)), "op": op, "args": args}))

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval_s)
            await ws.send(json.dumps({"req_id": str(next(self._req_ids)), "op": "ping"}))
