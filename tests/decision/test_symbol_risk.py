"""The compiled per-symbol risk state (`liqbot_core.SymbolRisk`, which the decide step folds every market record
into) against its oracle (`tests/oracle/risk.py`): the same reasons and the same state after every record of the
real captures and of SYNTHETIC hypothesis sequences (out of order, equal times, gaps, NaN and bad prices, timer
calls and order outcomes between them), the same errors, and snapshots that restore it exactly.
"""

from __future__ import annotations

import math
import pickle
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liqbot_core import SymbolRisk

from decision.ledger import Outcome
from decision.risk import RiskLimits
from liqbot.data import LIQUIDATION_FRAMES
from schemas.records import Liquidation, OrderIntent, Trade
from streams.capture_replay import capture_records
from tests.decision.test_compiled_features import every_real_record
from tests.oracle.risk import SymbolRisk as Oracle

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
# trips often on real data: a 50 ms heartbeat and a 1,000 USDT spike (BTCUSDT's own limit lower still)
TIGHT = RiskLimits(heartbeat_timeout_ms=50, heartbeat_cooldown_ms=200, breaker_spike_notional=1_000.0,
                   breaker_spike_window_ms=2_000, breaker_pause_ms=500,
                   breaker_spike_notional_by_symbol=(("BTCUSDT", 300.0),))


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def state(risk: SymbolRisk | Oracle) -> tuple[Any, ...]:
    """Everything the rules read of the state; the spike sum by its bits (a NaN equals a NaN, -0.0 is not 0.0)."""
    spike = risk.window_notional if isinstance(risk, SymbolRisk) else risk.liquidations.sums[0]
    return (risk.heartbeat_ns, risk.heartbeat_lost_until_ns, risk.paused_until_ns, risk.pause_reason,
            dict(risk.counts), bits(spike))


def assert_same_fold(records: Iterable[Any], limits: RiskLimits) -> tuple[SymbolRisk, list[str]]:
    """Both fold every record of one symbol alike; returns the compiled state and the reasons said."""
    compiled, oracle, said = SymbolRisk.for_limits(limits), Oracle.for_limits(limits), []
    for n, record in enumerate(records):
        reason = compiled.observe(record, limits)
        assert reason == oracle.observe(record, limits), (n, record)
        assert state(compiled) == state(oracle), (n, record)
        if reason is not None:
            said.append(reason)
    return compiled, said


@cache
def real_by_symbol() -> dict[tuple[str, str], list[Any]]:
    """Every real record of the captures and every real liquidation frame, by symbol, in capture order."""
    records: list[Any] = [*every_real_record(), *capture_records(LIQUIDATION_FRAMES, "bybit-linear")]
    by_symbol: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        by_symbol.setdefault((record.venue, record.symbol), []).append(record)
    return by_symbol


@pytest.mark.parametrize("limits", [RiskLimits(), TIGHT], ids=["default", "tight"])
def test_every_real_record_gives_the_oracles_reasons_and_state(limits: RiskLimits) -> None:
    reasons = []
    for records in real_by_symbol().values():
        _, said = assert_same_fold(records, limits)
        reasons += said
    assert sum(len(r) for r in real_by_symbol().values()) > 100_000
    if limits is TIGHT:  # both rules trip, and once together, on real data
        assert sum(r.startswith("heartbeat lost") for r in reasons) > 100
        assert sum("liquidation spike" in r for r in reasons) == 7  # of the captures' 10 liquidations
        assert any("; circuit breaker" in r for r in reasons)
    else:
        assert reasons == [r for r in reasons if r.startswith("heartbeat lost")]


def _outcome(net_return: float | None, ts_ns: int) -> Outcome:
    intent = OrderIntent(venue="v", symbol="S", client_order_id="lb-x", ts_event_ns=0, ts_recv_ns=0, mode="PAPER",
                         side="BUY", price="100", size="1", post_only=True, reduce_only=False, valid_for_ms=1,
                         hold_ms=1, take_profit_price=None, stop_loss_price=None, delta_bps=5.0,
                         expected_net_return=0.001, fill_probability=0.5, model_version="m", prediction_id="p")
    return Outcome(intent=intent, status="CLOSED", ts_event_ns=ts_ns, net_return=net_return)


@dataclass(frozen=True)
class Step:
    """One SYNTHETIC call on the state: a record folded, a timer's heartbeat check, or an order's outcome."""

    kind: str  # trade, liquidation, timer, outcome
    ts_ns: int
    price: str = "100"
    size: str = "1"
    net_return: float | None = None

    def call(self, risk: SymbolRisk | Oracle, limits: RiskLimits) -> str | None:
        if self.kind == "timer":
            return risk.heartbeat_lost(self.ts_ns, limits)
        if self.kind == "outcome":
            return risk.on_outcome(_outcome(self.net_return, self.ts_ns), limits)
        if self.kind == "trade":
            return risk.observe(Trade(venue="v", symbol="S", event_id=str(self.ts_ns), ts_event_ns=self.ts_ns,
                                      ts_exchange_ns=self.ts_ns, ts_recv_ns=self.ts_ns, taker_side="BUY",
                                      price=self.price, size=self.size), limits)
        return risk.observe(Liquidation(venue="v", symbol="S", event_id=str(self.ts_ns), ts_event_ns=self.ts_ns,
                                        ts_exchange_ns=self.ts_ns, ts_recv_ns=self.ts_ns, position_side="LONG",
                                        bankruptcy_price=self.price, size=self.size, feed="allLiquidation"), limits)


prices = st.sampled_from(["100", "0.5", "25000.125", "NaN", "inf", "-0", "1e6", "not a number", " 7 "])
returns = st.one_of(st.none(), st.sampled_from([math.nan, -math.inf, -0.02, -0.015, 0.0, 0.01]))
steps = st.lists(st.builds(Step, st.sampled_from(["trade", "trade", "liquidation", "liquidation", "timer", "outcome"]),
                           st.integers(-3_000, 3_000).map(lambda d: d * MS), prices, prices, returns),
                 max_size=120)


def run(calls: list[Step], limits: RiskLimits, risk: SymbolRisk | Oracle, origin: int) -> list[tuple[str, Any]]:
    """Each call's reason or error; times move by the steps' deltas from `origin` (some back, some equal)."""
    out: list[tuple[str, Any]] = []
    now = origin
    for call in calls:
        now += call.ts_ns
        try:
            out.append(("said", Step(call.kind, now, call.price, call.size, call.net_return).call(risk, limits)))
        except ValueError as error:
            out.append(("error", str(error)))
        out.append(("state", state(risk)))
    return out


@settings(max_examples=300, deadline=None)
@given(steps, st.sampled_from([RiskLimits(), TIGHT]))
def test_synthetic_sequences_give_the_oracles_reasons_state_and_errors(calls: list[Step], limits: RiskLimits) -> None:
    assert run(calls, limits, SymbolRisk.for_limits(limits), T0) == run(calls, limits, Oracle.for_limits(limits), T0)


def test_a_timer_far_past_the_heartbeat_is_held_exactly() -> None:
    """A timer's clock plus the cool-down may pass 2**63 ns: the state holds it as Python's ints do."""
    compiled, oracle = SymbolRisk.for_limits(TIGHT), Oracle.for_limits(TIGHT)
    for risk in (compiled, oracle):
        Step("trade", T0).call(risk, TIGHT)
    far = 2**63 - 1
    assert compiled.heartbeat_lost(far, TIGHT) == oracle.heartbeat_lost(far, TIGHT)
    assert compiled.heartbeat_lost_until_ns == oracle.heartbeat_lost_until_ns == far + 200 * MS


def test_a_snapshot_restores_the_state_and_it_goes_on_alike() -> None:
    records = real_by_symbol()[("bybit-linear", "BTCUSDT")]
    half = len(records) // 2
    compiled, _ = assert_same_fold(records[:half], TIGHT)
    restored = pickle.loads(pickle.dumps(compiled))
    assert restored == compiled and state(restored) == state(compiled)
    for record in records[half:]:
        assert restored.observe(record, TIGHT) == compiled.observe(record, TIGHT)
    assert restored == compiled and restored != SymbolRisk.for_limits(TIGHT)


def test_a_snapshot_that_is_not_one_is_refused() -> None:
    saved = SymbolRisk.for_limits(TIGHT).__getstate__()
    for bad in (saved[:-1], saved + b"\x00", b"foreign"):
        with pytest.raises(ValueError, match="not a saved SymbolRisk: the state is truncated or foreign"):
            SymbolRisk(1).__setstate__(bad)
