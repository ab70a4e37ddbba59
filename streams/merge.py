"""Several Kafka inputs of one partition merged into one event-time order, the order replay would see.

Faust hands an agent records in fetch order: a few hundred trades, then a few thousand book tickers. Features
folded in that order would let a book update from after a liquidation into the liquidation's vector (look-ahead)
and would differ from run to run. So records wait here until no input can still send an earlier one: an input
has either sent something at least as late, or has been read up to its end (its high-water mark).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["EventTimeMerge", "ordered"]

T = TypeVar("T")
Source = Hashable


@dataclass
class EventTimeMerge(Generic[T]):
    """Releases items in (event time, source rank, offset) order once every other source is past them or idle.

    Items of one source come out in the order they went in, so a source's consumed offsets stay a prefix.
    """

    sources: dict[Source, int] = field(default_factory=dict)  # source -> rank (ties in event time)
    newest_ns: dict[Source, int] = field(default_factory=dict)
    _by_newest: list[Source] = field(default_factory=list)  # sources from the least advanced, kept as they move
    _heap: list[tuple[int, int, int, int, T]] = field(default_factory=list)
    _pushed: int = 0

    def add_source(self, source: Source) -> None:
        if source not in self.sources:
            self.sources[source] = len(self.sources)
            self.newest_ns[source] = -1
            self._by_newest.insert(0, source)

    def push(self, source: Source, ts_ns: int, offset: int, item: T) -> None:
        """Queue an item; one earlier in time than its source's newest keeps its place behind it (offset order)."""
        self.add_source(source)
        newest = self.newest_ns[source]
        if ts_ns > newest:
            self._advance(source, ts_ns)
        else:
            ts_ns = newest
        self._pushed += 1
        heapq.heappush(self._heap, (ts_ns, self.sources[source], offset, self._pushed, item))

    def _advance(self, source: Source, ts_ns: int) -> None:
        """Move `source` up the order past every source now behind it (a few sources: a short walk)."""
        self.newest_ns[source] = ts_ns
        order, newest = self._by_newest, self.newest_ns
        i = order.index(source)
        while i + 1 < len(order) and newest[order[i + 1]] < ts_ns:
            order[i] = order[i + 1]
            i += 1
        order[i] = source

    def release(self, idle: Callable[[Source], bool]) -> list[T]:
        """Every item no source can precede any more; `idle(source)`: it has nothing unread right now."""
        out: list[T] = []
        heap, newest = self._heap, self.newest_ns
        # sources from the least advanced: each lets out what is no later than its newest, and only an idle one
        # (asked only when it would hold something back) lets the next one bound the release instead
        for source in self._by_newest:
            bound = newest[source]
            while heap and heap[0][0] <= bound:
                out.append(heapq.heappop(heap)[4])
            if not heap or not idle(source):
                return out
        while heap:
            out.append(heapq.heappop(heap)[4])
        return out

    def resume_points(self) -> dict[Source, int]:
        """Each source's newest time as of its last released item, for a snapshot: a restart that resumes from
        them gives re-read items the places they had (one earlier than its source's newest waits behind it)."""
        points = dict(self.newest_ns)
        by_rank = {rank: source for source, rank in self.sources.items()}
        for ts_ns, rank, *_ in self._heap:  # a held item's place is set by what its source released before it
            source = by_rank[rank]
            points[source] = min(points[source], ts_ns)
        return points

    def resume(self, points: Mapping[Source, int]) -> None:
        """Continue from a snapshot's `resume_points`; sources this merge does not wait on are ignored."""
        for source, ts_ns in points.items():
            if source in self.sources and ts_ns > self.newest_ns[source]:
                self._advance(source, ts_ns)

    def __len__(self) -> int:
        return len(self._heap)


def ordered(sources: Sequence[Iterable[tuple[int, int, T]]]) -> Iterator[T]:
    """Complete sources, each (ts_ns, offset, item) in offset order, in the order `EventTimeMerge` releases them
    once every source has been read to its end: (time held to its source's newest, source rank, offset), the rank
    being the source's place in `sources`. Lazy: one item per source waits here, so history streams through.
    The replay's order, tested equal to the merge's (`tests/streams/test_merge.py`).
    """
    def keyed(rank: int, items: Iterable[tuple[int, int, T]]) -> Iterator[tuple[int, int, int, T]]:
        newest = -1
        for ts_ns, offset, item in items:
            newest = max(newest, ts_ns)  # `push`: an item earlier than its source's newest waits behind it
            yield newest, rank, offset, item

    for *_, item in heapq.merge(*(keyed(rank, items) for rank, items in enumerate(sources))):
        yield item
