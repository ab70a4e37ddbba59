"""The test oracle of the compiled feature windows (`core/src/windows.rs`): the Python windows the
features were computed with before they were compiled. Tests only; the product never imports this.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

from decision.windows import WindowSums

__all__ = ["ValueAt", "WindowMax", "WindowMedian", "WindowSums"]


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
