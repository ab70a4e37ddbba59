"""Reads raw-frame captures (plain, .gz or .zst), one frame a line, in any of the supported line formats.

- recorder JSON lines: `{"t": "recv"|"http"|"connect"|"send", "conn", "ts": <epoch s>, "data": "<frame>"}`
  (the format of ../shared/data/bybit/*.jsonl.zst and of `liqbot record`);
- a raw venue frame per line (no receive time: stamped when read);
- `<receive time> <frame>` or `<receive time>: <frame>`, the time in epoch seconds (decimal) or nanoseconds.
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

import zstandard

from liqbot.errors import LiqbotError

__all__ = [
    "CaptureError", "CaptureWriter", "CapturedFrame", "open_text", "parse_receive_time", "read_capture", "venue_of",
]


class CaptureError(LiqbotError):
    """A capture file that cannot be read at all."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One line of a capture: the raw venue text, its local receive time, and where it came from.

    `kind` is "recv" (WebSocket frame), "http" (REST reply), or "invalid" (a line that is not in any
    supported format: `data` holds the line and `error` says why).
    """

    line_no: int
    kind: str
    conn: str
    ts_recv_ns: int
    data: str
    venue: str
    error: str = ""
    url: str = ""  # REST replies: the request, which says what the reply is


def open_text(path: Path) -> IO[str]:
    """A text stream over a plain, .gz or .zst file."""
    if not path.exists():
        raise CaptureError(f"capture not found: {path}")
    raw = path.open("rb")
    if path.suffix == ".zst":
        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True), encoding="utf-8")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8")
    return io.TextIOWrapper(raw, encoding="utf-8")


def venue_of(address: str, default: str) -> str:
    """Venue and market from a WebSocket address or REST url; `default` when the address says nothing."""
    if "bybit" in address:
        for market in ("linear", "spot", "inverse", "option"):
            if f"/public/{market}" in address or f"category={market}" in address:
                return f"bybit-{market}"
    if "fstream.binance" in address or "fapi.binance" in address:
        return "binance-usdm"
    return default


def parse_receive_time(token: str) -> int:
    """Epoch seconds (decimal text) or nanoseconds (19 digits) to integer nanoseconds."""
    token = token.rstrip(":")
    if token.isdigit() and len(token) >= 18:
        return int(token)
    try:
        seconds = Decimal(token)
    except InvalidOperation as exc:
        raise ValueError(f"receive time {token!r} is neither epoch seconds nor nanoseconds") from exc
    if not 1e9 <= seconds < 1e10:
        raise ValueError(f"receive time {token!r} is not epoch seconds (2001..2286) or nanoseconds")
    return int(seconds * 1_000_000_000)


def read_capture(path: Path, default_venue: str = "bybit-linear",
                 clock_ns: Callable[[], int] = time.time_ns) -> Iterator[CapturedFrame]:
    """Frames in file order; a line in no supported format comes out as kind "invalid", never silently dropped."""
    addresses: dict[str, str] = {}
    with open_text(path) as lines:
        for line_no, line in enumerate(lines, 1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                frame = _frame(text, line_no, addresses, default_venue, clock_ns)
            except (ValueError, KeyError, TypeError) as exc:
                frame = CapturedFrame(line_no, "invalid", "", clock_ns(), text, default_venue, str(exc))
            if frame is not None:
                yield frame


def _frame(text: str, line_no: int, addresses: dict[str, str], default_venue: str,
           clock_ns: Callable[[], int]) -> CapturedFrame | None:
    if not text.startswith("{"):
        token, _, frame = text.partition(" ")
        if not frame.lstrip().startswith("{"):
            raise ValueError("line is neither a JSON frame nor '<receive time> <frame>'")
        return CapturedFrame(line_no, "recv", "", parse_receive_time(token), frame.lstrip(), default_venue)
    entry = json.loads(text)
    if not isinstance(entry, dict) or "t" not in entry:
        return CapturedFrame(line_no, "recv", "", clock_ns(), text, default_venue)  # a raw frame, no time
    kind = entry["t"]
    if kind in ("connect", "send") and "addr" in entry:
        addresses[entry["conn"]] = entry["addr"]
    if kind not in ("recv", "http"):
        return None  # recorder bookkeeping: header, connect, send
    address = entry.get("url") or addresses.get(entry.get("conn", ""), "")
    return CapturedFrame(
        line_no=line_no, kind=kind, conn=entry.get("conn", ""),
        # `liqbot record` keeps nanoseconds; older recorders only seconds with microsecond digits
        ts_recv_ns=int(entry["ts_ns"]) if "ts_ns" in entry else round(float(entry["ts"]) * 1e6) * 1000,
        data=entry["data"], venue=venue_of(address, default_venue), url=entry.get("url", ""),
    )


class CaptureWriter:
    """Writes frames in the recorder format (zstandard JSON lines), so `read_capture` replays them."""

    def __init__(self, path: Path, venue: str, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.path = path
        self._raw = path.open("wb")
        self._out = zstandard.ZstdCompressor(level=3).stream_writer(self._raw, closefd=False)
        self._clock_ns = clock_ns
        self.frames = 0
        self._line({"t": "header", "format": 2, "venue": venue, "recorded": clock_ns() / 1e9})

    def connect(self, conn: str, address: str) -> None:
        self._line({"t": "connect", "conn": conn, "ts": self._clock_ns() / 1e9, "addr": address})

    def frame(self, conn: str, text: str, ts_recv_ns: int, kind: str = "recv", url: str = "") -> None:
        entry = {"t": kind, "conn": conn, "ts": ts_recv_ns / 1e9, "ts_ns": ts_recv_ns, "data": text}
        if url:
            entry["url"] = url
        self._line(entry)
        self.frames += 1

    def close(self) -> None:
        self._out.flush(zstandard.FLUSH_FRAME)
        self._out.close()  # type: ignore[no-untyped-call]
        self._raw.close()

    def _line(self, entry: dict[str, object]) -> None:
        self._out.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
