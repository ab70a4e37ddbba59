"""The test oracle of the compiled windows (`core/src/windows.rs`): the Python windows the features and the risk
rules' circuit breaker were computed with before they were compiled. Tests only; the product never imports this.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

__all__ = ["ValueAt", "WindowMax", "WindowMedian", "WindowSums"]

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


@dataclass
class WindowMax:
    """The largest value over a trailing window (a monotonic deque)."""

    window_ns: int
    points: deque[tuple[int, float]] = field(default_factory=deque)

    def add(self, ts_ns: int, value: float) -> None:
        while self.points and self.points[-1][1] <= value:
            self.points.pop()
        self.points.append((ts_ns, value))

    def expire(self, now_ns: int) -> None:
        while self.points and self.points[0][0] <= now_ns - self.window_ns:
            self.points.popleft()

    def value(self) -> float:
        """The maximum of the points in the window; NaN when it is empty."""
        return self.points[0][1] if self.points else float("nan")


@dataclass
class WindowMedian:
    """The median value over a trailing window; meant for sparse events (liquidations), O(n) per point."""

    window_ns: int
    points: deque[tuple[int, float]] = field(default_factory=deque)
    ordered: list[float] = field(default_factory=list)

    def add(self, ts_ns: int, value: float) -> None:
        self.points.append((ts_ns, value))
        insort(self.ordered, value)

    def expire(self, now_ns: int) -> None:
        while self.points and self.points[0][0] <= now_ns - self.window_ns:
            _, value = self.points.popleft()
            del self.ordered[bisect_left(self.ordered, value)]

    def value(self) -> float:
        """The median of the points in the window; NaN when it is empty."""
        n = len(self.ordered)
        if n == 0:
            return float("nan")
        mid = n // 2
        return self.ordered[mid] if n % 2 else (self.ordered[mid - 1] + self.ordered[mid]) / 2


@dataclass
class ValueAt:
    """The last value at or before now - window (for changes over a window, e.g. open interest)."""

    window_ns: int
    points: deque[tuple[int, float]] = field(default_factory=deque)

    def add(self, ts_ns: int, value: float) -> None:
        self.points.append((ts_ns, value))

    def expire(self, now_ns: int) -> None:
        while len(self.points) > 1 and self.points[1][0] <= now_ns - self.window_ns:
            self.points.popleft()  # the second point is old enough to be the answer: the first is not needed

    def value(self, now_ns: int) -> float:
        """The value as it stood at now - window; NaN when nothing that old is known."""
        if self.points and self.points[0][0] <= now_ns - self.window_ns:
            return self.points[0][1]
        return float("nan")
