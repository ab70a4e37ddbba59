"""Trailing window sums against a recount of the points in the window (SYNTHETIC points: whole numbers, so
the running sums are exact and any point counted twice or dropped early shows)."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oracle.windows import _COMPACT_AT, WindowSums

steps = st.lists(st.tuples(st.integers(0, 50), st.integers(-1000, 1000)), min_size=1, max_size=3000)


@settings(max_examples=60, deadline=None)
@given(steps, st.integers(1, 400))
def test_sums_are_those_of_the_points_in_the_window(gaps: list[tuple[int, int]], window: int) -> None:
    sums, points, now = WindowSums(window, 2), [], 0
    for gap, value in gaps:
        now += gap
        sums.add(now, (float(value), 1.0))
        points.append((now, value))
        sums.expire(now)
        inside = [v for t, v in points if t > now - window]
        assert sums.sums == [float(sum(inside)), float(len(inside))]
        assert len(sums.times) - sums.head == len(inside)
        assert len(sums.times) <= max(2 * len(inside), _COMPACT_AT + 1) + 1  # dropped points do not pile up
    assert pickle.loads(pickle.dumps(sums)) == sums


def test_an_emptied_window_sums_to_exactly_zero() -> None:
    sums = WindowSums(10, 1)
    sums.add(0, (0.1,))
    sums.add(1, (0.2,))
    sums.expire(5)
    sums.expire(20)
    assert sums.sums == [0.0] and sums.head == len(sums.times)
