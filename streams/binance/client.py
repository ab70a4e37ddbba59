"""Binance USD-M public streams: one combined-stream socket, REST depth snapshots, reconnects; nothing else.

Binance's book procedure: open the diff-depth stream, then fetch the REST snapshot; the book builder holds the
deltas that arrive first and bridges them to the snapshot. After a gap the snapshot is fetched again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from websockets.asyncio.client import ClientConnection

from liqbot.errors import LiqbotError
from streams.binance.parse import BinanceUsdmParser, DepthSnapshotParser
from streams.http import RestError, TransientHttpError, http_request
from streams.ingest import FrameOutcome
from streams.venue import FrameParser
from streams.websocket import ReconnectingSocket, ReconnectPolicy

__all__ = ["BinanceClient", "BinanceStreamConfig", "streams_for"]

log = logging.getLogger(__name__)

OnFrame = Callable[[FrameParser, str, int, str], FrameOutcome]


@dataclass(frozen=True, kw_only=True)
class BinanceStreamConfig:
    symbols: tuple[str, ...]
    venue: str = "binance-usdm"
    ws_base: str = "wss://fstream.binance.com"
    rest_base: str = "https://fapi.binance.com"
    depth_speed: str = "100ms"  # diff-depth update speed: 100ms, 250ms or 500ms
    snapshot_limit: int = 1000
    snapshot_delay_s: float = 1.0  # let deltas start arriving before the snapshot is taken
    policy: ReconnectPolicy = field(default_factory=ReconnectPolicy)


def streams_for(config: BinanceStreamConfig) -> list[str]:
    return [f"{s.lower()}@{kind}" for s in config.symbols
            for kind in ("forceOrder", "trade", f"depth@{config.depth_speed}", "bookTicker")]


@dataclass
class BinanceClient:
    config: BinanceStreamConfig
    on_frame: OnFrame
    recorder: Callable[[str, int], None] | None = None
    rest_recorder: Callable[[str, str, int], None] | None = None  # (url, reply, receive ns) of REST snapshots
    snapshots: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        url = f"{self.config.ws_base}/stream?streams={'/'.join(streams_for(self.config))}"
        # Binance pings every few minutes; the websockets library answers them by itself.
        self.socket = ReconnectingSocket(url, self.config.venue, self.config.policy, self._on_open, self._on_message)
        self._parser = BinanceUsdmParser(self.config.venue)

    @property
    def reconnects(self) -> int:
        return self.socket.reconnects

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.socket.run(stop)
        finally:
            for task in self._tasks:
                task.cancel()

    async def _on_open(self, ws: ClientConnection) -> None:
        for symbol in self.config.symbols:
            self._spawn_snapshot(symbol.upper())

    async def _on_message(self, ws: ClientConnection, text: str, ts_recv_ns: int) -> None:
        if self.recorder is not None:
            self.recorder(text, ts_recv_ns)
        outcome = self.on_frame(self._parser, text, ts_recv_ns, self.socket.url)
        if outcome.resync_topic:
            log.warning("book gap on %s: fetching a fresh snapshot", outcome.resync_topic)
            self._spawn_snapshot(outcome.resync_topic.split("@", 1)[0].upper())

    def _spawn_snapshot(self, symbol: str) -> None:
        task = asyncio.create_task(self._snapshot(symbol))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _snapshot(self, symbol: str) -> None:
        await asyncio.sleep(self.config.snapshot_delay_s)
        try:
            url, text = await asyncio.to_thread(self._fetch_depth, symbol)
        except LiqbotError as exc:
            log.error("depth snapshot of %s failed: %s", symbol, exc)
            return
        ts_recv_ns = time.time_ns()
        if self.rest_recorder is not None:
            self.rest_recorder(url, text, ts_recv_ns)
        self.on_frame(DepthSnapshotParser(url, self.config.venue), text, ts_recv_ns, url)
        self.snapshots += 1

    def _fetch_depth(self, symbol: str) -> tuple[str, str]:
        query = urllib.parse.urlencode({"symbol": symbol, "limit": self.config.snapshot_limit})
        url = f"{self.config.rest_base}/fapi/v1/depth?{query}"
        try:
            return url, _get(url)
        except TransientHttpError as exc:
            raise RestError(f"GET {url} failed after retries: {exc}") from exc


@retry(retry=retry_if_exception_type(TransientHttpError), stop=stop_after_attempt(5),
       wait=wait_exponential_jitter(multiplier=0.5, max=10.0, jitter=0.5), reraise=True)
def _get(url: str) -> str:
    # 429: slow down; 418: banned for a while
    return http_request("GET", url, timeout_s=10, transient_codes=(418, 429)).body.decode()
