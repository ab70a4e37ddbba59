"""The offset-to-time lookup table, on the cases of kafka-lag-exporter's own `LookupTableSpec` (MemoryTable).

Points are SYNTHETIC (offset, time) pairs, as in that spec; the broker test feeds real samples.
"""

from __future__ import annotations

import math

import pytest

from streams.lag.lookup import AddResult, LookupTable, Point, time_lag_s


def test_points_must_move_forward_in_time_and_never_back_in_offset() -> None:
    table = LookupTable(10)
    assert table.time_of(0) is None
    assert table.add(100, 100) is AddResult.INSERTED
    assert table.time_of(0) is None  # one point: too few
    assert [table.add(o, t) for o, t in [(110, 90), (90, 110), (0, 0), (110, -1), (-1, 110), (-1, -1)]] == [
        AddResult.OUT_OF_ORDER, AddResult.NON_MONOTONIC, AddResult.OUT_OF_ORDER, AddResult.OUT_OF_ORDER,
        AddResult.NON_MONOTONIC, AddResult.OUT_OF_ORDER]
    assert table.points == (Point(100, 100),)


@pytest.mark.parametrize("offset", [150, 190, 110, 10, 0, -100, 300, 100])
def test_square_table_interpolates_and_extrapolates(offset: int) -> None:
    table = LookupTable(10)
    table.add(100, 100)
    table.add(200, 200)
    assert table.time_of(offset) == offset


def test_flat_sections_compress_and_map_to_their_newest_time() -> None:
    table = LookupTable(10)
    for offset, time_ms in [(100, 30), (200, 60), (200, 120), (200, 700)]:
        table.add(offset, time_ms)
    assert table.points == (Point(100, 30), Point(200, 60), Point(200, 700))  # the middle 200 was replaced
    for offset, time_ms in [(300, 730), (300, 9000), (400, 9030)]:
        table.add(offset, time_ms)
    expected = {199: 59.7, 200: 700, 201: 700.3, 250: 715, 299: 729.7, 300: 9000, 301: 9000.3}
    assert {o: pytest.approx(table.time_of(o)) for o in expected} == expected


def test_a_sliding_window_of_steady_times_and_changing_rates() -> None:
    table = LookupTable(5)
    for offset, time_ms in [(-2, -2), (-1, -1), (0, 0), (10, 1), (200, 2), (3000, 3), (40000, 4)]:
        table.add(offset, time_ms)
    assert len(table.points) == 5
    expected = {1600: 2.5, 0: 0.0, 1: 0.09999999999999998, 9: 0.9, 10: 1, 200: 2, 2999: 2.9996428571428573,
                3000: 3, 3001: 3.000027027027027, -10000: -1, 50000: 5}
    assert {o: table.time_of(o) for o in expected} == expected  # the very doubles kafka-lag-exporter computes


def test_time_lag_is_zero_at_the_newest_high_watermark_and_nan_before_two_samples() -> None:
    table = LookupTable(5)
    table.add(0, 100)
    assert time_lag_s(table, 0, now_ms=5_000) == 0.0  # kafka-lag-exporter's LagIsZero, even with one point
    assert math.isnan(time_lag_s(table, -5, now_ms=5_000))  # TooFewPoints
    table.add(0, 200)
    assert time_lag_s(table, 0, now_ms=5_000) == 0.0


def test_time_lag_is_how_long_ago_the_log_end_was_at_the_committed_offset() -> None:
    table = LookupTable(60)
    for second in range(10):  # 100 records a second
        table.add(second * 100, second * 1000)
    assert time_lag_s(table, 900, now_ms=9_000) == 0.0
    assert time_lag_s(table, 450, now_ms=9_000) == 4.5
    assert time_lag_s(table, 0, now_ms=9_000) == 9.0
    assert time_lag_s(table, 950, now_ms=9_000) == 0.0  # a commit newer than the newest sample is not negative lag


def test_a_log_end_that_never_moved_dates_the_lag_from_the_oldest_point() -> None:
    # kafka-lag-exporter answers -inf/+inf here (dy == 0); the consumer has been behind at least since the first point
    table = LookupTable(10)
    for time_ms in (100, 200, 300, 400):
        table.add(100, time_ms)
    assert table.points == (Point(100, 100), Point(100, 400))
    assert table.time_of(99) == 100
    assert time_lag_s(table, 99, now_ms=1_100) == 1.0
