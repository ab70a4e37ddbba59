"""Several Kafka inputs of one partition merged into one event-time order, the order replay would see.

Faust hands an agent records in fetch order: a few hundred trades, then a few thousand book tickers. Features
folded in that order would let a book update from after a liquidation into the liquidation's vector (look-ahead)
and would differ from run to run. So records wait here until no input can still send an earlier one: an input
has either sent something at least as late, or has been read up to its end (its high-water mark).

`EventTimeMerge` is compiled (core/src/merge.rs): the features agent's batch path merges without a Python call
per record, and every other agent's inputs go through the same merge with Python objects as items. So is the
replay's merge of complete sources (`ordered`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from liqbot_core import EventTimeMerge, Ordered

__all__ = ["EventTimeMerge", "ordered"]

T = TypeVar("T")


def ordered(sources: Sequence[Iterable[tuple[int, int, T]]]) -> Iterator[tuple[int, int, T]]:
    """Complete sources, each (ts_ns, offset, item) in offset order, as (source rank, ts_ns, item) in the order
    `EventTimeMerge` releases them once every source has been read to its end: (time held to its source's newest,
    source rank, offset), the rank being the source's place in `sources`. Lazy: one item per source waits (in the
    core, `Ordered`), so history streams through. The replay's order, tested equal to the merge's
    (`tests/streams/test_merge.py`).
    """
    return Ordered(sources)
