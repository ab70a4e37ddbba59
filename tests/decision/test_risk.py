"""Every risk rule blocks what it must and lets a normal order pass; a rule that lacks an input refuses.

Account states, positions and proposals are hand-made (synthetic) unless a test says it reads a real capture.
"""

from __future__ import annotations

import math
import pickle

import pytest

from decision.ledger import Exposure, Outcome
from decision.risk import (
    AccountRisk,
    Proposal,
    RiskLimits,
    SymbolRisk,
    cancel_all_reason,
    check_circuit_breaker,
    check_correlated_exposure,
    check_drawdown,
    check_gates,
    check_heartbeat,
    check_kill_switch,
    check_liquidation_buffer,
    check_live_orders,
    check_max_position,
    check_order,
    drawdown_warning,
    order_notional,
)
from liqbot.data import BINANCE_CAPTURE, LIQUIDATION_FRAMES
from schemas.records import BookUpdate, Liquidation, OrderIntent, Position, Side, TopOfBook, Trade
from streams.capture_replay import capture_records

LIMITS = RiskLimits()
VENUE = "bybit-linear"
S, MS = 1_000_000_000, 1_000_000


def proposal(symbol: str = "BTCUSDT", side: Side = "BUY", price: float = 100.0, size: float = 40.0,
             mid: float = 100.0) -> Proposal:
    return Proposal(venue=VENUE, symbol=symbol, side=side, price=price, size=size, mid=mid)


def position(symbol: str, ts_ns: int, *, realised: float, unrealised: float = 0.0, fees: float = 0.0,
             funding: float = 0.0) -> Position:
    return Position(venue=VENUE, symbol=symbol, event_id=f"{symbol}:{ts_ns}", ts_event_ns=ts_ns, mode="PAPER",
                    size="0", entry_price=None, mark_price=None, realised_pnl=realised, unrealised_pnl=unrealised,
                    fees_paid=fees, funding_paid=funding, equity=math.nan)


def account(**exposure: Exposure) -> AccountRisk:
    acct = AccountRisk(starting_equity=100_000.0)
    for symbol, e in exposure.items():
        acct.set_exposure((VENUE, symbol), e)
    return acct


def trade(ts_ns: int) -> Trade:
    return Trade(venue=VENUE, symbol="BTCUSDT", event_id=str(ts_ns), ts_event_ns=ts_ns, ts_exchange_ns=ts_ns,
                 ts_recv_ns=ts_ns, taker_side="BUY", price="100", size="1")


def test_a_normal_order_passes_every_rule() -> None:
    symbol = SymbolRisk.for_limits(LIMITS)
    symbol.observe(trade(1 * S), LIMITS)
    assert check_gates(account(), symbol, 1 * S, LIMITS) == []
    assert check_order(proposal(), account(), LIMITS) == []  # 4,000 notional of 100,000 equity at 3x leverage
    assert cancel_all_reason(account(), symbol, 1 * S, LIMITS) is None


def test_required_inputs_cannot_be_left_out() -> None:
    with pytest.raises(TypeError, match="mid"):
        Proposal(venue=VENUE, symbol="BTCUSDT", side="BUY", price=1.0, size=1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="starting_equity"):
        AccountRisk()  # type: ignore[call-arg]


def test_kill_switch() -> None:
    acct = account()
    assert check_kill_switch(acct) is None
    acct.set_kill_switch("operator: exchange incident")
    assert check_kill_switch(acct) == "kill switch: operator: exchange incident"
    symbol = SymbolRisk.for_limits(LIMITS)
    symbol.observe(trade(1 * S), LIMITS)
    assert cancel_all_reason(acct, symbol, 1 * S, LIMITS) == "kill switch: operator: exchange incident"
    acct.set_kill_switch(None)
    assert check_kill_switch(acct) is None


def test_drawdown_warns_at_5_percent_and_halts_at_10_until_cleared() -> None:
    acct = account()
    assert acct.on_position(position("BTCUSDT", 1, realised=10_000.0), LIMITS) is None  # peak 110,000
    acct.on_position(position("ETHUSDT", 2, realised=-4_000.0, fees=100.0, funding=50.0, unrealised=-1_000.0), LIMITS)
    assert acct.equity() == 104_850.0 and acct.drawdown() == pytest.approx(1 - 104_850 / 110_000)
    assert drawdown_warning(acct, LIMITS) is None and check_drawdown(acct, LIMITS) is None  # 4.7%
    acct.on_position(position("ETHUSDT", 3, realised=-5_000.0, unrealised=-1_000.0), LIMITS)
    assert drawdown_warning(acct, LIMITS) == "drawdown 5.45% past the warning level 5%"
    assert check_drawdown(acct, LIMITS) is None
    halt = acct.on_position(position("ETHUSDT", 4, realised=-11_001.0), LIMITS)
    assert halt == "drawdown 10.00% reached the halt level 10%"
    acct.on_position(position("ETHUSDT", 5, realised=-2_000.0), LIMITS)  # recovered, but a halt latches
    assert check_drawdown(acct, LIMITS) == "halted: drawdown 10.00% reached the halt level 10%"
    acct.clear_halt()
    assert check_drawdown(acct, LIMITS) is None and acct.peak_equity == 108_000.0


def test_an_older_position_of_a_symbol_does_not_replace_a_newer_one() -> None:
    acct = account()
    acct.on_position(position("BTCUSDT", 2 * S, realised=-500.0), LIMITS)
    acct.on_position(position("BTCUSDT", 1 * S, realised=-9_000.0), LIMITS)
    assert acct.equity() == 99_500.0 and acct.counts["stale_position"] == 1


def test_an_unknown_equity_refuses_rather_than_passes() -> None:
    acct = account()
    acct.on_position(position("BTCUSDT", 1, realised=0.0, unrealised=math.nan), LIMITS)
    assert math.isnan(acct.equity())
    assert check_drawdown(acct, LIMITS) is not None and acct.halted is not None
    assert check_max_position(proposal(), acct, LIMITS) is not None
    assert check_correlated_exposure(proposal(), acct, LIMITS) is not None


def test_heartbeat_dead_man_switch() -> None:
    symbol = SymbolRisk.for_limits(LIMITS)
    assert check_heartbeat(symbol, 1 * S, LIMITS) == "dead-man switch: no heartbeat yet"
    assert symbol.observe(trade(1 * S), LIMITS) is None
    assert check_heartbeat(symbol, 11 * S, LIMITS) is None  # exactly the 10 s timeout
    assert check_heartbeat(symbol, 11 * S + 1 * MS, LIMITS) == "dead-man switch: no record for 10001 ms"
    assert symbol.heartbeat_lost(12 * S, LIMITS) == "heartbeat lost: no record for 11000 ms"  # a live timer
    assert symbol.observe(trade(21 * S), LIMITS) == "heartbeat lost: no record for 20000 ms"
    assert check_heartbeat(symbol, 22 * S, LIMITS) is not None
    assert "cooling down" in str(cancel_all_reason(account(), symbol, 22 * S, LIMITS))
    assert [symbol.observe(trade(t * S), LIMITS) for t in range(26, 82, 5)] == [None] * 12
    assert check_heartbeat(symbol, 81 * S - 1, LIMITS) is not None
    assert check_heartbeat(symbol, 81 * S, LIMITS) is None  # 60 s after the feed came back


def test_the_dead_man_switch_trips_exactly_at_the_real_tapes_gaps_over_the_timeout() -> None:
    """Real Binance records: with a 300 ms timeout it trips where a brute-force scan finds such a gap, else never."""
    records = [r for r in capture_records(BINANCE_CAPTURE, "binance-usdm")
               if isinstance(r, Trade | TopOfBook | BookUpdate)]
    tight = RiskLimits(heartbeat_timeout_ms=300)
    newest, gaps = records[0].ts_event_ns, []
    for r in records:
        if r.ts_event_ns - newest > 300 * MS:
            gaps.append(r.event_id)
        newest = max(newest, r.ts_event_ns)
    tripped: list[str] = []
    default = SymbolRisk.for_limits(LIMITS)
    symbol = SymbolRisk.for_limits(tight)
    for r in records:
        if symbol.observe(r, tight) is not None:
            tripped.append(r.event_id)
        assert default.observe(r, LIMITS) is None
    assert tripped == gaps and len(gaps) == 2


def _liquidation(ts_ns: int, notional: float, symbol: str = "BTCUSDT") -> Liquidation:
    return Liquidation(venue=VENUE, symbol=symbol, event_id=f"l{ts_ns}", ts_event_ns=ts_ns, ts_exchange_ns=ts_ns,
                       ts_recv_ns=ts_ns, position_side="LONG", bankruptcy_price="100", size=str(notional / 100),
                       feed="allLiquidation")


def test_a_liquidation_spike_pauses_the_symbol_for_the_pause_time() -> None:
    limits = RiskLimits(heartbeat_timeout_ms=3_600_000)  # only the breaker speaks here
    symbol = SymbolRisk.for_limits(limits)
    assert symbol.observe(_liquidation(0, 6e6), limits) is None
    assert symbol.observe(_liquidation(61 * S, 6e6), limits) is None  # the first left the 60 s window
    reason = symbol.observe(_liquidation(62 * S, 5e6), limits)
    assert reason == "circuit breaker: liquidation spike: 11,000,000 within 60000 ms (limit 10,000,000)"
    assert check_circuit_breaker(symbol, 62 * S + 600 * S - 1) is not None
    assert check_circuit_breaker(symbol, 62 * S + 600 * S) is None
    assert check_circuit_breaker(symbol, 0) is not None  # anything before the pause ends, too


def test_a_spike_limit_per_symbol_on_real_liquidations() -> None:
    """Real Bybit BTCUSDT liquidations 66 ms apart (0.006 and 0.038 BTC near 82,396): 3,625 USDT together."""
    limits = RiskLimits(breaker_spike_notional_by_symbol=(("BTCUSDT", 3_000.0),))
    btc = [r for r in capture_records(LIQUIDATION_FRAMES, VENUE) if isinstance(r, Liquidation)
           and r.symbol == "BTCUSDT"][:2]
    symbol = SymbolRisk.for_limits(limits)
    assert symbol.observe(btc[0], limits) is None
    assert symbol.observe(btc[1], limits) == \
        "circuit breaker: liquidation spike: 3,625 within 60000 ms (limit 3,000)"
    assert SymbolRisk.for_limits(LIMITS).observe(btc[1], LIMITS) is None


def _outcome(net_return: float | None, ts_ns: int = 5 * S) -> Outcome:
    intent = OrderIntent(venue=VENUE, symbol="BTCUSDT", client_order_id="lbabc", ts_event_ns=0, ts_recv_ns=0,
                         mode="PAPER", side="BUY", price="100", size="1", post_only=True, reduce_only=False,
                         valid_for_ms=1, hold_ms=1, take_profit_price=None, stop_loss_price=None, delta_bps=5.0,
                         expected_net_return=0.001, fill_probability=0.5, model_version="m", prediction_id="p")
    return Outcome(intent=intent, status="CLOSED", ts_event_ns=ts_ns, net_return=net_return)


def test_an_abnormal_loss_pauses_the_symbol() -> None:
    symbol = SymbolRisk.for_limits(LIMITS)
    assert symbol.on_outcome(_outcome(-0.01), LIMITS) is None  # a stop-loss sized loss is normal
    assert symbol.on_outcome(_outcome(None), LIMITS) is None
    assert check_circuit_breaker(symbol, 5 * S) is None
    assert symbol.on_outcome(_outcome(-0.02), LIMITS) == "circuit breaker: abnormal loss: -2.00% on lbabc"
    assert check_circuit_breaker(symbol, 5 * S) == \
        f"circuit breaker until {605 * S}: abnormal loss: -2.00% on lbabc"


def test_live_orders_per_symbol() -> None:
    assert check_live_orders(proposal(), account(BTCUSDT=Exposure(100.0, 0.0, 1)), LIMITS) == \
        "1 live orders on BTCUSDT (limit 1)"
    assert check_live_orders(proposal(), account(ETHUSDT=Exposure(100.0, 0.0, 1)), LIMITS) is None


def test_max_position_is_10_percent_of_equity() -> None:
    assert check_max_position(proposal(size=100.0), account(), LIMITS) is None  # exactly 10,000
    assert check_max_position(proposal(size=40.0), account(BTCUSDT=Exposure(0.0, 6_001.0, 0)), LIMITS) == \
        "position 10,001.00 on BTCUSDT would exceed 10% of equity (10,000.00)"
    assert check_max_position(proposal(price=math.nan), account(), LIMITS) is not None


@pytest.mark.parametrize(("leverage", "side", "reason"), [
    (3.0, "BUY", None),
    (3.0, "SELL", None),
    (5.0, "BUY", "liquidation price 80.50 only 19.5% from mid 100.00 (at least 20%)"),
    (5.0, "SELL", "liquidation price 119.50 only 19.5% from mid 100.00 (at least 20%)"),
])
def test_liquidation_price_stays_20_percent_away(leverage: float, side: Side, reason: str | None) -> None:
    assert check_liquidation_buffer(proposal(side=side), RiskLimits(leverage=leverage)) == reason


def test_liquidation_buffer_refuses_without_a_mid_or_a_sane_leverage() -> None:
    assert check_liquidation_buffer(proposal(mid=math.nan), LIMITS) is not None
    assert check_liquidation_buffer(proposal(), RiskLimits(leverage=math.nan)) is not None


def test_correlated_exposure_is_capped_across_symbols_in_one_direction() -> None:
    crowded = account(BTCUSDT=Exposure(15_000.0, 0.0, 1), ETHUSDT=Exposure(8_000.0, 9_000.0, 1))
    assert check_correlated_exposure(proposal("SOLUSDT"), crowded, LIMITS) == \
        "BUY notional 27,000.00 across * would exceed 25% of equity (25,000.00)"
    assert check_correlated_exposure(proposal("SOLUSDT", side="SELL"), crowded, LIMITS) is None
    majors = RiskLimits(correlated_groups=(("BTCUSDT", "ETHUSDT"),))
    assert check_correlated_exposure(proposal("SOLUSDT"), crowded, majors) is None
    assert check_correlated_exposure(proposal("ETHUSDT"), crowded, majors) is not None


def test_sizing_takes_the_room_left_under_the_caps() -> None:
    assert order_notional(account(), (VENUE, "BTCUSDT"), "BUY", 0.05, LIMITS) == 5_000.0
    busy = account(BTCUSDT=Exposure(7_000.0, 0.0, 1), ETHUSDT=Exposure(10_000.0, 0.0, 1))
    assert order_notional(busy, (VENUE, "BTCUSDT"), "BUY", 0.05, LIMITS) == 3_000.0  # 10% of equity less 7,000
    busy.set_exposure((VENUE, "ETHUSDT"), Exposure(16_000.0, 0.0, 1))
    assert order_notional(busy, (VENUE, "SOLUSDT"), "BUY", 0.05, LIMITS) == 2_000.0  # 25% less 23,000 long
    assert order_notional(busy, (VENUE, "SOLUSDT"), "SELL", 0.05, LIMITS) == 5_000.0


def test_gates_report_every_refusal_in_order_and_states_pickle() -> None:
    acct, symbol = account(), SymbolRisk.for_limits(LIMITS)
    acct.set_kill_switch("test")
    assert check_gates(acct, symbol, 1 * S, LIMITS) == ["kill switch: test", "dead-man switch: no heartbeat yet"]
    assert pickle.loads(pickle.dumps(acct)) == acct
    assert pickle.loads(pickle.dumps(symbol)) == symbol
