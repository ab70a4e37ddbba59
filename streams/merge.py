"""Several Kafka inputs of one partition merged into one event-time order, the order replay would see.

Faust hands an agent records in fetch order: a few hundred trades, then a few thousand book tickers. Features
folded in that order would let a book update from after a liquidation into the liquidation's vector (look-ahead)
and would differ from run to run. So records wait here until no input can still send an earlier one: an input
has either sent something at least as late, or has been read up to its end (its high-water mark).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["EventTimeMerge"]

T = TypeVar("T")
Source = Hashable


@dataclass
class EventTimeMerge(Generic[T]):
    """Releases items in (event time, source rank, offset) order once every other source is past them or idle.

    Items of one source come out in the order they went in, so a source's consumed offsets stay a prefix.
    """

    sources: dict[Source, int] = field(default_factory=dict)  # source -> rank (ties in event time)
    newest_ns: dict[Source, int] = field(default_factory=dict)
    newest_offset: dict[Source, int] = field(default_factory=dict)  # the newest offset pushed per source
    _heap: list[tuple[int, int, int, int, T]] = field(default_factory=list)
    _pushed: int = 0

    def add_source(self, source: Source) -> None:
        self.sources.setdefault(source, len(self.sources))

    def seen(self, source: Source, ts_ns: int) -> None:
        """`source` sent something at `ts_ns` (also a record skipped as already applied)."""
        self.add_source(source)
        if ts_ns > self.newest_ns.get(source, -1):
            self.newest_ns[source] = ts_ns

    def push(self, source: Source, ts_ns: int, offset: int, item: T) -> None:
        """Queue an item; one earlier in time than its source's newest keeps its place behind it (offset order)."""
        ts_ns = max(ts_ns, self.newest_ns.get(source, -1))
        self.seen(source, ts_ns)
        self.newest_offset[source] = offset
        self._pushed += 1
        heapq.heappush(self._heap, (ts_ns, self.sources[source], offset, self._pushed, item))

    def release(self, idle: Callable[[Source], bool]) -> list[T]:
        """Every item no source can precede any more; `idle(source)`: it has nothing unread right now."""
        out: list[T] = []
        known: dict[Source, bool] = {}  # idle() asks the consumer: only for sources that lag, once per call

        def waiting_for(source: Source, ts_ns: int) -> bool:
            if self.newest_ns.get(source, -1) >= ts_ns:
                return False
            if source not in known:
                known[source] = idle(source)
            return not known[source]

        while self._heap:
            ts_ns = self._heap[0][0]
            if any(waiting_for(s, ts_ns) for s in self.sources):
                break
            out.append(heapq.heappop(self._heap)[4])
        return out

    def __len__(self) -> int:
        return len(self._heap)
