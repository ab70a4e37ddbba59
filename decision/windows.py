"""Trailing event-time window sums, (now - window, now], updated in amortised O(1) per point.

The risk rules' circuit breaker keeps one; the features' windows are compiled (`core/src/windows.rs`).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

_COMPACT_AT = 1024  # dropped points a window keeps before it moves the live ones to the front


@dataclass
class WindowSums:
    """Sums of fixed-width value tuples over one trailing window; points must come in time order.

    Points are kept in flat columns, not as tuples: a window of thousands pickles as two buffers (the agents'
    snapshots block their thread) and gives the garbage collector nothing to walk.
    """

    window_ns: int
    width: int
    times: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))  # `width` per point
    head: int = 0  # the oldest point still in the window; those before it are dropped in bulk
    sums: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sums = self.sums or [0.0] * self.width

    def add(self, ts_ns: int, values: tuple[float, ...]) -> None:
        self.times.append(ts_ns)
        self.values.extend(values)
        sums = self.sums
        for i, value in enumerate(values):
            sums[i] += value

    def expire(self, now_ns: int) -> None:
        """Drop the points at or before now - window."""
        times, horizon, head, end = self.times, now_ns - self.window_ns, self.head, len(self.times)
        if head < end and times[head] <= horizon:
            values, sums, width = self.values, self.sums, self.width
            while head < end and times[head] <= horizon:
                base = head * width
                for i in range(width):
                    sums[i] -= values[base + i]
                head += 1
            if head > _COMPACT_AT and 2 * head > end:
                del times[:head], values[:head * width]
                head = 0
            self.head = head
        if head == len(times):  # subtraction leaves rounding dust; an empty window sums to exactly zero
            self.sums = [0.0] * self.width
