"""The wick order's life: these are hand-made (synthetic) price paths, each built to hit one rule exactly."""

from __future__ import annotations

import pytest

from decision.arms import ArmGrid, entry_side, limit_price
from decision.orders import ExitRule, Fees, WickOrder

MS = 1_000_000


def _order(side: str = "BUY", price: float = 100.0) -> WickOrder:
    return WickOrder(side=side, price=price, placed_ns=0, valid_for_ms=1_000,  # type: ignore[arg-type]
                     exit_rule=ExitRule(hold_ms=5_000, take_profit_bps=100, stop_loss_bps=50), fees=Fees())


def test_a_touch_is_not_a_fill_and_a_print_through_is() -> None:
    order = _order()
    assert order.on_trade(10 * MS, 100.0) is None and order.state == "RESTING"
    assert order.on_trade(20 * MS, 99.99) == "FILLED" and order.fill_ns == 20 * MS
    sell = _order("SELL")
    assert sell.on_trade(10 * MS, 100.0) is None
    assert sell.on_trade(11 * MS, 100.01) == "FILLED"


def test_the_trade_at_placement_cannot_fill_and_t_cancels() -> None:
    order = _order()
    assert order.on_trade(0, 90.0) is None
    assert order.on_trade(1_000 * MS, 100.0) is None  # exactly at T it still rests
    assert order.on_trade(1_000 * MS + 1, 90.0) == "EXPIRED"
    assert order.state == "EXPIRED" and order.net_return() is None


@pytest.mark.parametrize(("path", "reason", "exit_price"), [
    ([(2, 101.0)], "TAKE_PROFIT", 101.0),
    ([(2, 99.6), (3, 99.5)], "STOP_LOSS", 99.5),
    ([(2, 100.2), (5_000, 100.3), (5_001, 100.4)], "HOLD_ELAPSED", 100.3),
])
def test_exits(path: list[tuple[int, float]], reason: str, exit_price: float) -> None:
    order = _order()
    assert order.on_trade(1 * MS, 99.9) == "FILLED"
    outcomes = [order.on_trade(1 * MS + t * MS, p) for t, p in path]
    assert outcomes[-1] == reason or reason in outcomes
    assert order.exit_price == exit_price and order.state == "CLOSED"
    expected = (exit_price - 100.0) / 100.0 - 0.0002 - 0.00055 * exit_price / 100.0
    assert order.net_return() == pytest.approx(expected, abs=1e-15)


def test_funding_is_paid_by_longs_and_received_by_shorts() -> None:
    long_, short = _order("BUY"), _order("SELL")
    long_.on_trade(1 * MS, 99.0)
    short.on_trade(1 * MS, 101.0)
    long_.on_funding(0.0001)
    short.on_funding(0.0001)
    long_.on_trade(6_001 * MS, 100.0)
    short.on_trade(6_001 * MS, 100.0)
    assert long_.funding == 0.0001 and short.funding == -0.0001
    assert long_.net_return() == pytest.approx(-0.0002 - 0.00055 - 0.0001)


def test_arm_grid_and_limit_prices() -> None:
    grid = ArmGrid()
    assert len(grid.arms()) == len(grid.deltas_bps) * len(grid.valid_for_ms)
    assert grid.arms()[0].key() == "5bps/10000ms"
    assert grid.fingerprint() != ArmGrid(deltas_bps=(5.0,)).fingerprint()
    assert entry_side("LONG") == "BUY" and entry_side("SHORT") == "SELL"
    assert limit_price(100.0, "BUY", 20) == pytest.approx(99.8)
    assert limit_price(100.0, "SELL", 20) == pytest.approx(100.2)
