"""A live session: instruments over REST, then the public stream, all through the shared ingest path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from streams.bybit.client import BybitPublicClient, BybitStreamConfig
from streams.bybit.rest import BybitRest
from streams.capture import CaptureWriter
from streams.capture_replay import BybitRestParser
from streams.ingest import Ingestor

__all__ = ["LiveSession"]


@dataclass
class LiveSession:
    config: BybitStreamConfig
    ingestor: Ingestor
    rest: BybitRest | None = None
    writer: CaptureWriter | None = None
    progress_s: float = 10.0
    say: Callable[[str], None] = print

    async def run(self, stop: asyncio.Event) -> BybitPublicClient:
        """Stream until `stop` is set; returns the client (reconnects, refused subscriptions)."""
        if self.rest is not None:
            self._rest_history(self.rest)
        recorder = None
        if self.writer is not None:
            writer = self.writer
            writer.connect("ws", self.config.url)
            recorder = lambda text, ts_ns: writer.frame("ws", text, ts_ns)  # noqa: E731 (one line)
        client = BybitPublicClient(self.config, self.ingestor.on_frame, recorder=recorder)
        progress = asyncio.create_task(self._progress(client))
        try:
            await client.run(stop)
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        return client

    def _rest_history(self, rest: BybitRest) -> None:
        """Instruments, and on perpetuals the recent open interest and funding, before the stream starts."""
        category = self.config.venue.removeprefix("bybit-")
        for symbol in self.config.symbols:
            replies = [rest.instruments(category, symbol)]
            if category == "linear":
                replies += [rest.open_interest(category, symbol), rest.funding_history(category, symbol)]
            for reply in replies:
                if self.writer is not None:
                    self.writer.frame("rest", reply.text, reply.ts_recv_ns, kind="http", url=reply.url)
                self.ingestor.on_frame(BybitRestParser(self.config.venue, reply.url), reply.text, reply.ts_recv_ns,
                                       f"{self.config.venue}:{reply.url}")

    async def _progress(self, client: BybitPublicClient) -> None:
        while True:
            await asyncio.sleep(self.progress_s)
            stats = self.ingestor.stats
            self.say(f"  {stats.summary()} reconnects {client.reconnects} "
                     f"dead letters {stats.errors} repeated frames {stats.repeated_frames}")
