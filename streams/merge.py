"""Several Kafka inputs of one partition merged into one event-time order, the order replay would see.

Faust hands an agent records in fetch order: a few hundred trades, then a few thousand book tickers. Features
folded in that order would let a book update from after a liquidation into the liquidation's vector (look-ahead)
and would differ from run to run. So records wait here until no input can still send an earlier one: an input
has either sent something at least as late, or has been read up to its end (its high-water mark).

`EventTimeMerge` is compiled (core/src/merge.rs): the features agent's batch path merges without a Python call
per record, and every other agent's inputs go through the same merge with Python objects as items.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from liqbot_core import EventTimeMerge

__all__ = ["EventTimeMerge", "ordered"]

T = TypeVar("T")


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
