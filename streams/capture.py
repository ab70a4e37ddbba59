"""Reads raw-frame captures: JSON lines of {t, conn, ts, data}, plain, gzip or zstandard."""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from liqbot.errors import LiqbotError

__all__ = ["CaptureError", "CapturedFrame", "open_text", "read_capture", "venue_of"]


class CaptureError(LiqbotError):
    """A capture file or line that cannot be read."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One received frame: the raw venue text, its local receive time, and where it came from."""

    line_no: int
    kind: str  # "recv" (WebSocket) or "http" (REST reply)
    conn: str
    ts_recv_ns: int
    data: str
    venue: str  # from the connection's address, e.g. bybit-linear


def open_text(path: Path) -> IO[str]:
    """A text stream over a plain, .gz or .zst file."""
    raw = path.open("rb")
    if path.suffix == ".zst":
        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True), encoding="utf-8")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8")
    return io.TextIOWrapper(raw, encoding="utf-8")


def venue_of(address: str) -> str:
    """Venue and market from a WebSocket address or REST url."""
    if "bybit" in address:
        for market in ("linear", "spot", "inverse", "option"):
            if f"/public/{market}" in address or f"category={market}" in address:
                return f"bybit-{market}"
    raise CaptureError(f"cannot tell the venue and market of {address!r}")


def read_capture(path: Path, default_venue: str = "bybit-linear",
                 clock_ns: Callable[[], int] = time.time_ns) -> Iterator[CapturedFrame]:
    """Received frames in file order.

    Recorder lines ({t, conn, ts, data}) take the venue from their connection's address; a line that is a
    raw venue frame has no recorded receive time and is stamped with `clock_ns()` when read.
    """
    addresses: dict[str, str] = {}
    with open_text(path) as lines:
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise CaptureError(f"{path}:{line_no}: not a JSON line: {exc}") from exc
            if isinstance(entry, dict) and "t" not in entry:
                yield CapturedFrame(line_no=line_no, kind="recv", conn="", ts_recv_ns=clock_ns(),
                                    data=line.rstrip("\n"), venue=default_venue)
                continue
            kind = entry.get("t")
            if kind in ("connect", "send") and "addr" in entry:
                addresses[entry["conn"]] = entry["addr"]
            if kind not in ("recv", "http"):
                continue
            address = entry.get("url") or addresses.get(entry.get("conn", ""), "")
            yield CapturedFrame(
                line_no=line_no, kind=kind, conn=entry.get("conn", ""),
                ts_recv_ns=round(float(entry["ts"]) * 1e6) * 1000,  # recorder keeps microseconds
                data=entry["data"], venue=venue_of(address),
            )
