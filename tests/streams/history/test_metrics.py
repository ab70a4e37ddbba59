"""The report's metrics on small hand-made SYNTHETIC equity curves whose answers are worked out by hand."""

from __future__ import annotations

import math

import pytest

from streams.history.metrics import DAY_NS, drawdown_curve, max_drawdown, period_returns, sharpe, sortino


def test_max_drawdown_is_the_deepest_fall_from_a_running_peak() -> None:
    # peaks 100 then 120; falls 100->90 (10) and 120->96 (24, 20% of 120); the later, deeper one wins
    dd = max_drawdown([100.0, 90.0, 120.0, 110.0, 96.0, 130.0])
    assert (dd.amount, dd.fraction, dd.peak_index, dd.trough_index) == (24.0, 0.2, 2, 4)
    assert drawdown_curve([100.0, 90.0, 120.0, 110.0, 96.0, 130.0]) == [0.0, 10.0, 0.0, 10.0, 24.0, 0.0]


@pytest.mark.parametrize("curve", [[], [100.0], [100.0, 100.0, 101.0, 105.0]])
def test_a_curve_that_never_falls_has_no_drawdown(curve: list[float]) -> None:
    assert max_drawdown(curve).amount == 0.0 and max_drawdown(curve).fraction == 0.0


def test_a_drawdown_from_a_non_positive_peak_has_no_fraction() -> None:
    assert max_drawdown([0.0, -5.0]).fraction is None


def test_sharpe_and_sortino_of_known_returns() -> None:
    returns = [0.01, -0.01, 0.02, 0.0]
    # mean 0.005; sample variance (0.005² + 0.015² + 0.015² + 0.005²) / 3 = 0.0005 / 3
    assert sharpe(returns, periods_per_year=365) == pytest.approx(0.005 / math.sqrt(0.0005 / 3) * math.sqrt(365))
    # downside deviation sqrt(0.01² / 4) = 0.005, so mean / downside = 1
    assert sortino(returns, periods_per_year=365) == pytest.approx(math.sqrt(365))
    assert sharpe(returns, periods_per_year=1) == pytest.approx(0.3872983346)


@pytest.mark.parametrize("returns", [[], [0.01], [0.01, 0.01, 0.01]])
def test_sharpe_is_none_without_two_returns_that_differ(returns: list[float]) -> None:
    assert sharpe(returns) is None


@pytest.mark.parametrize("returns", [[], [-0.01], [0.01, 0.02, 0.0]])
def test_sortino_is_none_without_two_returns_or_a_losing_one(returns: list[float]) -> None:
    assert sortino(returns) is None


def test_period_returns_sample_the_curve_at_each_whole_day_end() -> None:
    start = 10 * DAY_NS
    times = [start + DAY_NS // 2, start + DAY_NS + 1, start + 2 * DAY_NS - 1, start + 3 * DAY_NS + 5]
    equity = [110.0, 99.0, 121.0, 50.0]
    # day 1 ends at 110 (from 100), day 2 at 121 (the last point before its end), day 3 is flat, the part-day
    # after day 3 (which holds the fall to 50) is left out
    got = period_returns(times, equity, start_ns=start, end_ns=start + 3 * DAY_NS + DAY_NS // 2, start_equity=100.0)
    assert got == pytest.approx([0.1, 0.1, 0.0])
    assert period_returns(times, equity, start_ns=start, end_ns=start + DAY_NS - 1, start_equity=100.0) == []
