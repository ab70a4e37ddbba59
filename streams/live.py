"""A live session: a venue's stream client run until stopped, with progress, through the shared ingest path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streams.bybit.client import BybitStreamConfig
from streams.bybit.rest import BybitRest
from streams.capture import CaptureWriter
from streams.capture_replay import BybitRestParser
from streams.ingest import Ingestor

__all__ = ["LiveSession", "StreamClient", "bybit_rest_history"]


class StreamClient(Protocol):
    @property
    def reconnects(self) -> int: ...

    async def run(self, stop: asyncio.Event) -> None: ...


@dataclass
class LiveSession:
    client: StreamClient
    ingestor: Ingestor
    progress_s: float = 10.0
    say: Callable[[str], None] = print

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until `stop` is set, printing the counts every `progress_s`."""
        progress = asyncio.create_task(self._progress())
        try:
            await self.client.run(stop)
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(self.progress_s)
            stats = self.ingestor.stats
            self.say(f"  {stats.summary()} reconnects {self.client.reconnects} "
                     f"dead letters {stats.errors} repeated frames {stats.repeated_frames}")


def bybit_rest_history(config: BybitStreamConfig, rest: BybitRest, ingestor: Ingestor,
                       writer: CaptureWriter | None = None) -> None:
    """Instruments, and on perpetuals the recent open interest and funding, before the stream starts."""
    category = config.venue.removeprefix("bybit-")
    for symbol in config.symbols:
        replies = [rest.instruments(category, symbol)]
        if category == "linear":
            replies += [rest.open_interest(category, symbol), rest.funding_history(category, symbol)]
        for reply in replies:
            if writer is not None:
                writer.frame("rest", reply.text, reply.ts_recv_ns, kind="http", url=reply.url)
            ingestor.on_frame(BybitRestParser(config.venue, reply.url), reply.text, reply.ts_recv_ns,
                              f"{config.venue}:{reply.url}")
