"""Decision points and labels on the real tape: labels equal a brute-force reading of the rules, never look past
their horizon, and a row exists only where the tape settles it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from decision.arms import ArmGrid, limit_price
from decision.feature_spec import NS_PER_S, FeatureSpec
from decision.features import MarketRecord, feature_history
from decision.orders import ExitRule, Fees, WickOrder
from decision.scoring import ARM_INPUTS, input_names
from schemas.records import Side, Trade
from training.dataset import (
    Dataset,
    DecisionPoint,
    DecisionPoints,
    Label,
    Tape,
    horizon_ns,
    label,
    point_labels,
)
from training.fit import time_split

GRID, EXIT, FEES = ArmGrid(), ExitRule(), Fees()
MS = 1_000_000


def brute_label(tape: Tape, point: DecisionPoint, side: Side, delta_bps: float, valid_for_ms: int) -> Label:
    """The rules as written (no funding: the Binance tape has none), read straight off the trade list."""
    price, placed = limit_price(point.mid, side, delta_bps), point.vector.ts_event_ns
    d = 1 if side == "BUY" else -1
    start = point.tape_index + 1
    trades = list(zip(tape.ts_ns[start:start + 20_000], tape.prices[start:start + 20_000], strict=True))
    fill = None
    for i, (ts, px) in enumerate(trades):
        if ts > placed + valid_for_ms * MS:
            return Label(filled=False, net_return=None, outcome="EXPIRED")
        if ts > placed and (px < price if side == "BUY" else px > price):
            fill = i
            break
    assert fill is not None, "the tape ends before T: such a row must not exist"
    fill_ts = trades[fill][0]
    take, stop = price * (1 + d * EXIT.take_profit_bps * 1e-4), price * (1 - d * EXIT.stop_loss_bps * 1e-4)
    for ts, px in trades[fill + 1:]:
        if ts > fill_ts and (d * (px - take) >= 0 or d * (px - stop) <= 0 or ts >= fill_ts + EXIT.hold_ms * MS):
            net = d * (px - price) / price - FEES.maker_rate - FEES.taker_rate * px / price
            return Label(filled=True, net_return=net, outcome="?")
    raise AssertionError("the tape ends before the exit: such a row must not exist")


def test_decision_points_are_each_symbols_first_trade_of_a_second(binance_points: DecisionPoints) -> None:
    points, skipped = binance_points.points, binance_points.skipped
    tape = binance_points.tapes[("binance-usdm", "BTCUSDT")]
    seconds = [p.vector.ts_event_ns // NS_PER_S for p in points]
    assert len(points) == 343 and len(set(seconds)) == len(points) and seconds == sorted(seconds)
    assert skipped == {"missing_required": 1}  # the first second: no depth snapshot yet, so no depth imbalance
    for point in points:
        i = point.tape_index
        assert tape.ts_ns[i] // NS_PER_S == point.vector.ts_event_ns // NS_PER_S
        assert i == 0 or tape.ts_ns[i - 1] // NS_PER_S < tape.ts_ns[i] // NS_PER_S
        assert math.isfinite(point.mid)


def test_a_decision_points_features_are_the_live_vector_at_its_trade(binance_records: list[MarketRecord],
                                                                     binance_points: DecisionPoints) -> None:
    points = binance_points.points
    index = {r.event_id: n for n, r in enumerate(binance_records) if isinstance(r, Trade)}
    for point in (points[0], points[len(points) // 2], points[-1]):
        live = feature_history(binance_records[: index[point.vector.event_id] + 1])[-1]
        assert live.event_id == point.vector.event_id
        assert all(a == b or (math.isnan(a) and math.isnan(b))
                   for a, b in zip(live.values, point.vector.values, strict=True))


def test_labels_equal_a_brute_force_reading_of_the_real_tape(binance_points: DecisionPoints) -> None:
    points, tape = binance_points.points, binance_points.tapes[("binance-usdm", "BTCUSDT")]
    assert tape.funding == {}  # the Binance capture carries no funding stream
    checked = filled = 0
    for point in points[::7]:
        for side, i, got in point_labels(point, tape, GRID, EXIT, FEES):
            if got is None:
                continue
            arm = GRID.arms()[i]
            want = brute_label(tape, point, side, arm.delta_bps, arm.valid_for_ms)
            assert got.filled == want.filled, (point.vector.event_id, side, arm)
            if want.net_return is not None:
                assert got.net_return == pytest.approx(want.net_return, abs=1e-15)
                filled += 1
            checked += 1
    assert checked > 500 and filled > 40


def test_a_label_does_not_depend_on_the_tape_after_its_horizon(binance_points: DecisionPoints) -> None:
    points, tape = binance_points.points, binance_points.tapes[("binance-usdm", "BTCUSDT")]
    settled = 0
    for point in points[::23]:
        for arm in GRID.arms():
            one_arm = ArmGrid(deltas_bps=(arm.delta_bps,), valid_for_ms=(arm.valid_for_ms,))
            whole = [got for _, _, got in point_labels(point, tape, one_arm, EXIT, FEES)]
            horizon = point.vector.ts_event_ns + horizon_ns(arm, EXIT)
            end = next((j for j, ts in enumerate(tape.ts_ns) if ts >= horizon), None)
            if end is None:
                assert whole == [None, None]
                continue
            cut = replace(tape, ts_ns=tape.ts_ns[: end + 1], prices=tape.prices[: end + 1])
            short = replace(tape, ts_ns=tape.ts_ns[:end], prices=tape.prices[:end])
            assert [got for _, _, got in point_labels(point, cut, one_arm, EXIT, FEES)] == whole
            # one trade short of the horizon: no row, not a guess
            assert [got for _, _, got in point_labels(point, short, one_arm, EXIT, FEES)] == [None, None]
            settled += 1
    assert settled > 60


def test_rows_exist_only_where_the_tape_settles_them(dataset: Dataset) -> None:
    binance, bybit = dataset.captures
    per_point = 2 * len(GRID.arms())
    assert (binance.rows, binance.filled, binance.decision_points) == (3968, 420, 343)
    assert binance.rows + binance.past_tape_end == binance.decision_points * per_point
    # 44 s is shorter than the shortest horizon (T 10 s + H 60 s): the Bybit capture settles no label at all
    assert bybit.rows == 0 and bybit.past_tape_end == bybit.decision_points * per_point == 72 * per_point
    assert bybit.funding_times == 4 and binance.funding_times == 0
    assert len(dataset.inputs) == binance.rows and dataset.columns == input_names(FeatureSpec())
    assert (dataset.settled_by_ns - dataset.decided_ns).min() == (10_000 + EXIT.hold_ms) * MS
    assert set(dataset.inputs[:, -1].tolist()) == {1.0, -1.0}
    arms = {(float(d), int(t)) for d, t in dataset.inputs[:, -len(ARM_INPUTS):-1].tolist()}
    assert arms == {(a.delta_bps, a.valid_for_ms) for a in GRID.arms()}
    assert (np.isfinite(dataset.net_return) == dataset.filled).all()


def test_the_time_split_trains_only_on_labels_settled_before_the_test_period(dataset: Dataset) -> None:
    split = time_split(dataset)
    assert split.train.sum() == 1536 and split.test.sum() == 928 and not (split.train & split.test).any()
    assert dataset.settled_by_ns[split.train].max() <= split.at_ns <= dataset.decided_ns[split.test].min()


# SYNTHETIC tapes below: hand-made prices that reach rules the real tape cannot show on demand.

def test_funding_crossed_by_an_open_position_is_charged() -> None:
    """Synthetic: a buy fills, a funding time passes while it is open, it exits at H."""
    tape = Tape(ts_ns=[0, 1 * MS, 2 * MS, 30_000 * MS, 61_000 * MS], prices=[100.0, 100.0, 99.0, 99.5, 100.0],
                funding={20_000 * MS: 0.0001, 90_000 * MS: 0.0005})
    order = WickOrder(side="BUY", price=99.9, placed_ns=0, valid_for_ms=10_000, exit_rule=EXIT, fees=FEES)
    got = label(tape, 0, order)
    assert got.filled and got.outcome == "HOLD_ELAPSED"
    assert got.net_return == pytest.approx((100.0 - 99.9) / 99.9 - 0.0002 - 0.00055 * 100.0 / 99.9 - 0.0001)


def test_a_label_the_tape_cannot_settle_is_an_error() -> None:
    """Synthetic: the order fills and the tape ends inside H."""
    tape = Tape(ts_ns=[0, 1 * MS, 2 * MS], prices=[100.0, 99.0, 99.5])
    order = WickOrder(side="BUY", price=99.9, placed_ns=0, valid_for_ms=10_000, exit_rule=EXIT, fees=FEES)
    with pytest.raises(Exception, match="not settled by the end of the tape"):
        label(tape, 0, order)
