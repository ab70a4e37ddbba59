"""Bybit v5 public WebSocket client: sockets, subscriptions, pings, silence and reconnects; nothing else.

Frames go, with their local receive time, to a callback (the shared ingest path); parsing lives in parse.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from websockets.asyncio.client import ClientConnection

from streams.bybit.parse import BybitPublicParser
from streams.ingest import FrameOutcome
from streams.venue import FrameParser
from streams.websocket import ReconnectingSocket, ReconnectPolicy

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
    args_per_request: int = 10  # Bybit's limit of topics per subscribe request (spot); linear takes it too
    topics_per_connection: int = 200  # above this, run several clients
    policy: ReconnectPolicy = field(default_factory=ReconnectPolicy)  # silence (pongs count), backoff


def topics_for(config: BybitStreamConfig) -> list[str]:
    channels = ["allLiquidation", "publicTrade", f"orderbook.{config.book_depth}", "tickers"]
    if config.kline:
        channels.append("kline.1")
    return [f"{channel}.{symbol}" for symbol in config.symbols for channel in channels]


@dataclass
class BybitPublicClient:
    config: BybitStreamConfig
    on_frame: OnFrame
    recorder: Callable[[str, int], None] | None = None  # every received text with its receive time
    failed_subscriptions: list[str] = field(default_factory=list)
    _req_ids: count[int] = field(default_factory=count)

    def __post_init__(self) -> None:
        self.topics = topics_for(self.config)
        if len(self.topics) > self.config.topics_per_connection:
            raise ValueError(f"{len(self.topics)} topics exceed {self.config.topics_per_connection} per connection;"
                             " split the symbols over several connections")
        self.socket = ReconnectingSocket(self.config.url, self.config.venue, self.config.policy, self._on_open,
                                         self._on_message, keepalive=self._ping)
        self._parser: FrameParser = BybitPublicParser(self.config.venue)
        self._source = f"{self.config.venue}:{self.config.url}"

    @property
    def reconnects(self) -> int:
        return self.socket.reconnects

    @property
    def last_frame_ns(self) -> int:
        return self.socket.last_message_ns

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until `stop` is set; every drop or silence reconnects, with backoff while connecting fails."""
        await self.socket.run(stop)

    async def _on_open(self, ws: ClientConnection) -> None:
        self._parser = BybitPublicParser(self.config.venue)  # ticker state starts afresh with the connection
        step = self.config.args_per_request
        for i in range(0, len(self.topics), step):
            await self._send(ws, "subscribe", self.topics[i:i + step])

    async def _on_message(self, ws: ClientConnection, text: str, ts_recv_ns: int) -> None:
        if self.recorder is not None:
            self.recorder(text, ts_recv_ns)
        if '"op"' in text[:300]:
            self._check_ack(text)
        outcome = self.on_frame(self._parser, text, ts_recv_ns, self._source)
        if outcome.resync_topic:
            log.warning("book gap on %s: resubscribing for a fresh snapshot", outcome.resync_topic)
            await self._send(ws, "unsubscribe", [outcome.resync_topic])
            await self._send(ws, "subscribe", [outcome.resync_topic])

    def _check_ack(self, text: str) -> None:
        try:
            reply = json.loads(text)
        except ValueError:
            return  # the ingest path dead-letters it
        if not isinstance(reply, dict):
            return  # likewise
        if reply.get("op") == "subscribe" and reply.get("success") is False:
            self.failed_subscriptions.append(str(reply.get("ret_msg")))
            log.error("subscription refused by %s: %s", self.config.url, reply.get("ret_msg"))

    async def _send(self, ws: ClientConnection, op: str, args: list[str]) -> None:
        await ws.send(json.dumps({"req_id": str(next(self._req_ids)), "op": op, "args": args}))

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval_s)
            await ws.send(json.dumps({"req_id": str(next(self._req_ids)), "op": "ping"}))
