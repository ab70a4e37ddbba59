"""kafka-lag-exporter's offset-to-time lookup table: sampled (high watermark, time) points per partition.

The time lag of a committed offset is how long ago the log end was at that offset: the time is read off the table by
linear interpolation between the two points around the offset, or extrapolated along the whole table when the offset
lies outside it. Semantics of seglo/kafka-lag-exporter's `LookupTable.MemoryTable` (commit 3fcb3c7), reimplemented;
docs/lag.md says where this differs. Pure: the caller passes every time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise

__all__ = ["DEFAULT_SIZE", "AddResult", "LookupTable", "Point", "time_lag_s"]

DEFAULT_SIZE = 60  # kafka-lag-exporter's `lookup-table.memory.size`


class AddResult(Enum):
    INSERTED = "inserted"
    UPDATED = "updated"  # a flat line: the newest point moved right instead of adding another
    OUT_OF_ORDER = "out-of-order"  # not newer than the newest point: dropped
    NON_MONOTONIC = "non-monotonic"  # offset below the newest point's (a truncated or recreated log): dropped


@dataclass(frozen=True, slots=True)
class Point:
    offset: int  # the high watermark
    time_ms: int  # when it was the high watermark


class LookupTable:
    """At most `size` points, oldest first, offsets non-decreasing and times increasing."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 2:
            raise ValueError(f"a lookup table needs room for two points to interpolate, not {size}")
        self._points: deque[Point] = deque(maxlen=size)

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(self._points)

    def add(self, offset: int, time_ms: int) -> AddResult:
        """Add a sample; a run of equal offsets keeps only its first and newest points."""
        if self._points:
            newest = self._points[-1]
            if newest.time_ms >= time_ms:
                return AddResult.OUT_OF_ORDER
            if newest.offset > offset:
                return AddResult.NON_MONOTONIC
            if len(self._points) > 1 and self._points[-2].offset == newest.offset == offset:
                self._points[-1] = Point(offset, time_ms)
                return AddResult.UPDATED
        self._points.append(Point(offset, time_ms))
        return AddResult.INSERTED

    def time_of(self, offset: int) -> float | None:
        """When the log end was at `offset` (ms, fractional), None with fewer than two points.

        The newest point's own offset maps to "now" for the caller (zero lag): see `time_lag_s`.
        """
        if len(self._points) < 2:
            return None
        left, right = self._segment(offset)
        if right.offset == left.offset:
            # kafka-lag-exporter divides by zero here (the log end never moved in the table): the consumer has been
            # behind at least since the oldest point, so that is the time
            return float(left.time_ms)
        # kafka-lag-exporter's order of operations, so both give the same doubles
        return right.time_ms - (right.offset - offset) * (right.time_ms - left.time_ms) / (right.offset - left.offset)

    def _segment(self, offset: int) -> tuple[Point, Point]:
        """The newest pair of neighbours around `offset`, else the whole table (extrapolation)."""
        for right, left in pairwise(reversed(self._points)):
            if left.offset <= offset <= right.offset:
                return left, right
        return self._points[0], self._points[-1]


def time_lag_s(table: LookupTable, committed: int, now_ms: int) -> float:
    """kafka-lag-exporter's time lag: 0 at the newest high watermark, NaN with too few points, never negative."""
    points = table.points
    if points and committed == points[-1].offset:
        return 0.0
    at_ms = table.time_of(committed)
    if at_ms is None:
        return math.nan
    # The commit can be ahead of the newest sample (it came later): extrapolation then lands in the future
    return max(now_ms - at_ms, 0.0) / 1000
