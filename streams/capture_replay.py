"""Captured frames through the very parser, book checks and producer of the live path."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.records import AvroRecord
from streams.bybit.parse import BybitPublicParser, parse_rest
from streams.capture import CapturedFrame, CaptureError, read_capture
from streams.ingest import CountingSink, Ingestor, IngestStats
from streams.venue import BookStep, Encoded, FrameParser, NativeBooks, Parsed

__all__ = ["BybitRestParser", "capture_records", "make_parser", "replay_captures"]

DEFAULT_VENUES = {"bybit": "bybit-linear", "binance": "binance-usdm"}


@dataclass
class BybitRestParser:
    """REST replies (instruments, open interest, funding history), told apart by the request URL."""

    venue: str
    url: str = "/v5/market/instruments-info"  # older captures recorded only instrument listings

    def encoded(self, frame_text: str | bytes, ts_recv_ns: int, books: NativeBooks) -> Encoded | BookStep | None:
        return None  # REST replies are rare: no compiled path

    def parse(self, frame_text: str | bytes, ts_recv_ns: int) -> Parsed:
        return parse_rest(self.url, frame_text, ts_recv_ns, self.venue)


def make_parser(venue: str, kind: str = "recv", url: str = "") -> FrameParser:
    """The live path's parser for a venue and market (`bybit-linear`, `bybit-spot`, `binance-usdm`)."""
    if venue.startswith("bybit-"):
        if kind == "http":
            return BybitRestParser(venue, url) if url else BybitRestParser(venue)
        return BybitPublicParser(venue)
    if venue == "binance-usdm":
        from streams.binance.parse import BinanceUsdmParser, DepthSnapshotParser  # noqa: PLC0415 (Binance only)

        return DepthSnapshotParser(url, venue) if kind == "http" else BinanceUsdmParser(venue)
    raise CaptureError(f"no parser for venue {venue!r}; known: bybit-linear, bybit-spot, binance-usdm")


def replay_captures(paths: Iterable[Path], ingestor: Ingestor, *, venue: str = "bybit-linear",
                    speed: float | None = None, say: Callable[[str], None] = print) -> IngestStats:
    """Feed every frame of every file to `ingestor`; `speed` replays at a multiple of the recorded pace."""
    for path in paths:
        parsers: dict[tuple[str, str, str, str], FrameParser] = {}
        pace = _Pace(speed)
        for n, frame in enumerate(read_capture(path, default_venue=venue), 1):
            source = f"capture:{path.name}:{frame.line_no}"
            if frame.kind == "invalid":
                ingestor.reject(frame.venue, source, ValueError(frame.error), frame.data, frame.ts_recv_ns)
                continue
            pace.wait(frame)
            key = (frame.conn, frame.venue, frame.kind, frame.url)
            parser = parsers.get(key) or parsers.setdefault(key, make_parser(frame.venue, frame.kind, frame.url))
            ingestor.on_frame(parser, frame.data, frame.ts_recv_ns, source)
            if n % 50_000 == 0:
                say(f"  {path.name}: {n} frames")
    return ingestor.stats


def capture_records(path: Path, venue: str) -> list[AvroRecord]:
    """Every record the live path makes of a capture, in order, without Kafka (features, labels, tests)."""
    sink = CountingSink()
    replay_captures([path], Ingestor(sink), venue=venue, say=lambda _: None)
    return sink.records


class _Pace:
    """Sleeps so that frames go out at `speed` times their recorded receive-time spacing."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self.first_ns: int | None = None
        self.start = time.monotonic()

    def wait(self, frame: CapturedFrame) -> None:
        if self.speed is None:
            return
        if self.first_ns is None:
            self.first_ns = frame.ts_recv_ns
        due = self.start + (frame.ts_recv_ns - self.first_ns) / 1e9 / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
