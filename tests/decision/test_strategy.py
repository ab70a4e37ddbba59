"""Decisions: positive arms only, Thompson sampling that replays and restarts identically, ids, ticks, refusals.

The market state is real: Bybit's BTCUSDT listing, book and trades from the 44 s capture. The trigger is a real
BTCUSDT liquidation from Bybit's frames, moved in time to the capture's last book (the capture itself holds no
liquidation); model outputs are hand-made, as a model's would be.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import replace
from decimal import Decimal
from functools import cache

import pytest

from decision.arms import ArmGrid
from decision.bandit import ArmPosterior, BanditConfig, Posteriors, uniform
from decision.ids import MAX_CLIENT_ID_CHARS, entry_order_id, exit_order_id
from decision.ledger import Exposure
from decision.risk import AccountRisk
from decision.strategy import Decision, StrategyConfig, SymbolStrategy, decide, floor_to_step, round_to_tick
from liqbot.data import BYBIT_CAPTURE, LIQUIDATION_FRAMES
from schemas.records import ArmPrediction, Liquidation, OrderEvent, PositionSide, Prediction, TopOfBook
from streams.capture_replay import capture_records

VENUE, SYMBOL = "bybit-linear", "BTCUSDT"
CONFIG = StrategyConfig()
LIMITS = CONFIG.risk
GRID = ArmGrid()
MS = 1_000_000


@cache
def market() -> SymbolStrategy:
    """The strategy state after every real BTCUSDT linear record of the capture (listing, book, trades, tickers)."""
    state = SymbolStrategy.new(VENUE, SYMBOL, LIMITS)
    for record in capture_records(BYBIT_CAPTURE, VENUE):
        if getattr(record, "venue", None) == VENUE and getattr(record, "symbol", None) == SYMBOL:
            state.on_record(record, LIMITS)  # type: ignore[arg-type]
    return state


def fresh() -> SymbolStrategy:
    state: SymbolStrategy = pickle.loads(pickle.dumps(market()))
    return state


@cache
def real_liquidation() -> Liquidation:
    return next(r for r in capture_records(LIQUIDATION_FRAMES, VENUE)
                if isinstance(r, Liquidation) and r.symbol == SYMBOL)


def trigger(n: int = 0, side: PositionSide = "LONG") -> Liquidation:
    top = market().top
    assert top is not None
    return replace(real_liquidation(), event_id=f"{real_liquidation().event_id}:{n}", ts_event_ns=top.ts_event_ns,
                   position_side=side)


def prediction(liq: Liquidation, returns: dict[int, float], fill: float = 0.5) -> Prediction:
    """Arm i of the grid predicts returns.get(i, -0.001)."""
    arms = tuple(ArmPrediction(delta_bps=a.delta_bps, valid_for_ms=a.valid_for_ms,
                               expected_net_return=returns.get(i, -0.001), fill_probability=fill)
                 for i, a in enumerate(GRID.arms()))
    return Prediction(venue=liq.venue, symbol=liq.symbol, event_id=liq.event_id, ts_event_ns=liq.ts_event_ns,
                      ts_recv_ns=liq.ts_recv_ns, model_version="hand-made", feature_spec="n/a", arms=arms)


def account() -> AccountRisk:
    return AccountRisk(starting_equity=100_000.0)


def test_the_real_market_state_is_what_the_decisions_below_assume() -> None:
    state = market()
    assert state.instrument is not None and (state.instrument.tick_size, state.instrument.qty_step) == ("0.10", "0.001")
    assert state.top is not None and state.top.mid == 65114.25


def test_a_long_liquidation_buys_the_positive_arm_at_a_tick_rounded_price_and_a_lot_rounded_size() -> None:
    state, liq = fresh(), trigger()
    decision = decide(state, account(), prediction(liq, {4: 0.01}), liq, CONFIG)  # arm 4: 20 bps, 10 s
    intent = decision.intent
    assert intent is not None and decision.code == "intent" and decision.draws[0][0] == "20bps/10000ms"
    # 65114.25 * (1 - 0.002) = 64984.0215 -> down to the tick; 5% of 100,000 / 64984.0 = 0.07694 -> down to the lot
    assert (intent.side, intent.price, intent.size) == ("BUY", "64984.00", "0.076")
    # TP 64984.0 * 1.006 = 65373.904 rounds up, SL 64984.0 * 0.994 = 64594.096 rounds down: away from the entry
    assert (intent.take_profit_price, intent.stop_loss_price) == ("65374.00", "64594.00")
    assert (intent.valid_for_ms, intent.hold_ms, intent.delta_bps, intent.post_only, intent.reduce_only) == \
           (10_000, 60_000, 20.0, True, False)
    assert (intent.prediction_id, intent.ts_event_ns, intent.ts_recv_ns, intent.mode) == \
           (liq.event_id, liq.ts_event_ns, liq.ts_recv_ns, "PAPER")
    assert intent.client_order_id == entry_order_id(VENUE, SYMBOL, liq.event_id, "20bps/10000ms")
    assert state.counts == {"intent": 1} and state.orders.exposure() == Exposure(64984.0 * 0.076, 0.0, 1)


def test_a_short_liquidation_sells_above_mid_rounded_up() -> None:
    liq = trigger(side="SHORT")
    intent = decide(fresh(), account(), prediction(liq, {2: 0.01}), liq, CONFIG).intent  # 10 bps, 10 s
    assert intent is not None
    # 65114.25 * 1.001 = 65179.36425 -> up to the tick; TP below the entry rounds down, SL above rounds up
    assert (intent.side, intent.price, intent.take_profit_price, intent.stop_loss_price) == \
           ("SELL", "65179.40", "64788.30", "65570.50")


def test_rounding_helpers() -> None:
    assert round_to_tick(100.07, "0.05", "BUY") == Decimal("100.05")
    assert round_to_tick(100.07, "0.05", "SELL") == Decimal("100.10")
    assert round_to_tick(100.05, "0.05", "SELL") == Decimal("100.05")  # on the grid stays
    assert floor_to_step(0.0769, "0.001") == Decimal("0.076")
    assert floor_to_step(math.nan, "0.001") == floor_to_step(-1.0, "0.001") == Decimal(0)


def _refused(decision: Decision, code: str, reason_part: str) -> None:
    assert decision.intent is None and decision.code == code
    assert decision.reason is not None and reason_part in decision.reason, decision.reason


@pytest.mark.parametrize(("arm", "reason_part"), [
    (ArmPrediction(delta_bps=5, valid_for_ms=10_000, expected_net_return=math.nan, fill_probability=0.5), "NaN"),
    (ArmPrediction(delta_bps=5, valid_for_ms=10_000, expected_net_return=0.01, fill_probability=math.nan), "NaN"),
    (ArmPrediction(delta_bps=5, valid_for_ms=10_000, expected_net_return=math.inf, fill_probability=0.5), "inf"),
    (ArmPrediction(delta_bps=5, valid_for_ms=10_000, expected_net_return=0.01, fill_probability=1.5), "1.5"),
])
def test_no_order_is_ever_sent_on_a_nan_or_out_of_range_model_output(arm: ArmPrediction, reason_part: str) -> None:
    liq = trigger()
    good = prediction(liq, {0: 0.003, 1: 0.003})
    state = fresh()
    decision = decide(state, account(), replace(good, arms=(*good.arms[:1], arm, *good.arms[2:])), liq, CONFIG)
    _refused(decision, "bad_prediction", reason_part)
    assert state.counts == {"bad_prediction": 1} and state.orders.live == {}


def test_refusals_on_bad_inputs_are_counted_with_their_reason() -> None:
    liq = trigger()
    good = prediction(liq, {0: 0.003})
    state = fresh()
    assert decide(state, account(), good, liq, CONFIG).intent is not None
    _refused(decide(state, account(), good, liq, CONFIG), "duplicate", "already decided")
    other = trigger(1)
    _refused(decide(fresh(), account(), prediction(other, {0: 0.003}), liq, CONFIG), "trigger_mismatch", "is not")
    _refused(decide(fresh(), account(), replace(good, arms=()), liq, CONFIG), "bad_prediction", "no arms")
    for field, value, code, part in [("top", None, "no_book", "no top of book"),
                                     ("instrument", None, "no_instrument", "unknown")]:
        broken = fresh()
        setattr(broken, field, value)
        _refused(decide(broken, account(), good, liq, CONFIG), code, part)
    stale = replace(liq, ts_event_ns=liq.ts_event_ns + 5_001 * MS)
    _refused(decide(fresh(), account(), prediction(stale, {0: 0.003}), stale, CONFIG), "stale_book", "5001 ms old")
    crossed = fresh()
    assert crossed.top is not None
    crossed.top = replace(crossed.top, bid_price=crossed.top.ask_price)
    _refused(decide(crossed, account(), good, liq, CONFIG), "crossed_book", "bid 65114.30 ask 65114.30")


def test_only_positive_arms_with_a_chance_to_fill_are_candidates() -> None:
    liq = trigger()
    _refused(decide(fresh(), account(), prediction(liq, {}), liq, CONFIG), "no_positive_arm", "positive")
    _refused(decide(fresh(), account(), prediction(liq, {0: 0.0}), liq, CONFIG), "no_positive_arm", "positive")
    unlikely = prediction(liq, {0: 0.003}, fill=0.01)  # below the 5% minimum fill probability
    _refused(decide(fresh(), account(), unlikely, liq, CONFIG), "no_positive_arm", "positive")


def test_risk_refusals_come_with_the_rules_reasons() -> None:
    liq = trigger()
    good = prediction(liq, {0: 0.003})
    killed = account()
    killed.set_kill_switch("operator")
    _refused(decide(fresh(), killed, good, liq, CONFIG), "risk_gate", "kill switch: operator")
    busy = account()
    busy.set_exposure((VENUE, SYMBOL), Exposure(1_000.0, 0.0, 1))
    _refused(decide(fresh(), busy, good, liq, CONFIG), "risk_order", "1 live orders on BTCUSDT (limit 1)")
    _refused(decide(fresh(), AccountRisk(starting_equity=10.0), good, liq, CONFIG), "too_small",
             "below the minimum 0.001")


def test_thompson_draws_are_a_function_of_the_decision_and_the_posterior() -> None:
    """Two equally good arms: the same decision picks the same arm every time; different decisions explore both."""
    chosen = []
    for n in range(200):
        liq = trigger(n)
        first = decide(fresh(), account(), prediction(liq, {0: 0.004, 3: 0.004}), liq, CONFIG)
        again = decide(fresh(), account(), prediction(liq, {0: 0.004, 3: 0.004}), liq, CONFIG)
        assert first == again and first.intent is not None
        chosen.append(first.draws)
    picks = [max(d, key=lambda x: x[1])[0] for d in chosen]
    assert 70 < picks.count("5bps/10000ms") < 130 and picks.count("5bps/10000ms") + picks.count("10bps/60000ms") == 200


def test_the_posterior_is_the_conjugate_normal_update() -> None:
    config = BanditConfig(prior_sd=0.001, reward_sd=0.004)
    posteriors = Posteriors()
    for residual in (-0.002, -0.004, 0.0):
        posteriors.update("a", residual)
    mean, sd = posteriors.arms["a"].mean_sd(config)
    precision = 1 / 0.001**2 + 3 / 0.004**2
    assert posteriors.arms["a"].n == 3
    assert mean == pytest.approx(-0.006 / 0.004**2 / precision) and sd == pytest.approx(precision**-0.5)
    assert ArmPosterior().mean_sd(config)[1] == pytest.approx(0.001)
    with pytest.raises(ValueError, match="must not learn a NaN"):
        posteriors.update("a", math.nan)
    assert 0.0 < uniform("x") < 1.0 and uniform("x") == uniform("x") != uniform("y")


def _event(client_id: str, status: str, ts_ns: int) -> OrderEvent:
    return OrderEvent(venue=VENUE, symbol=SYMBOL, event_id=f"{client_id}:2", client_order_id=client_id,
                      venue_order_id=None, ts_event_ns=ts_ns, ts_recv_ns=ts_ns, status=status,  # type: ignore[arg-type]
                      side="BUY", price="0", size="0", filled_size="0")


def test_an_expired_order_teaches_its_arm_that_the_decision_earned_nothing() -> None:
    """Synthetic outcome: the order expires unfilled, so the arm's residual is 0 - P(fill) * E[return | fill]."""
    state, acct, liq = fresh(), account(), trigger()
    decision = decide(state, acct, prediction(liq, {0: 0.01}, fill=0.4), liq, CONFIG)
    assert decision.intent is not None and acct.exposure[(VENUE, SYMBOL)].live_orders == 1
    outcome = state.on_order_event(_event(decision.intent.client_order_id, "EXPIRED", liq.ts_event_ns), acct, LIMITS)
    assert outcome is not None and (outcome.status, outcome.net_return, outcome.arm_key) == \
           ("EXPIRED", 0.0, "5bps/10000ms")
    assert state.posteriors.arms == {"5bps/10000ms": ArmPosterior(1, -0.004)}
    assert acct.exposure[(VENUE, SYMBOL)] == Exposure(0.0, 0.0, 0)
    assert state.on_order_event(_event(decision.intent.client_order_id, "EXPIRED", liq.ts_event_ns), acct,
                                LIMITS) is None  # a redelivered event teaches nothing twice
    assert state.orders.counts == {"expired": 1, "duplicate_event": 1}


def test_the_bandit_turns_away_from_an_arm_the_model_overrates() -> None:
    """Synthetic evidence: arm 0 earned 0.3% less than predicted, 400 times."""
    def picks(state: SymbolStrategy) -> list[float]:
        decisions = [decide(state, account(), prediction(trigger(n), {0: 0.008, 3: 0.005}), trigger(n), CONFIG)
                     for n in range(20)]
        return [d.intent.delta_bps for d in decisions if d.intent is not None]

    assert picks(fresh()).count(5.0) >= 18  # the model's favourite, P(fill)*E = 0.4% against 0.25%
    taught = fresh()
    for _ in range(400):
        taught.posteriors.update("5bps/10000ms", -0.003)
    assert picks(taught) == [10.0] * 20


def test_thompson_abstains_when_no_arm_is_sampled_above_zero() -> None:
    """Synthetic evidence: the only positive arm lost 1% against its prediction, 400 times."""
    state, liq = fresh(), trigger()
    for _ in range(400):
        state.posteriors.update("5bps/10000ms", -0.01)
    decision = decide(state, account(), prediction(liq, {0: 0.004}), liq, CONFIG)
    _refused(decision, "thompson_declined", "does not beat doing nothing")
    assert [key for key, _ in decision.draws] == ["5bps/10000ms"] and decision.draws[0][1] < 0


def test_posteriors_round_trip_through_json_and_a_restart_makes_the_same_choices() -> None:
    state = fresh()
    for key, residuals in {"5bps/10000ms": (-0.001, 0.002), "40bps/60000ms": (0.0005,)}.items():
        for r in residuals:
            state.posteriors.update(key, r)
    restored = fresh()
    restored.posteriors = Posteriors.from_dict(json.loads(json.dumps(state.posteriors.to_dict())))
    assert restored.posteriors == state.posteriors
    for n in range(30):
        liq = trigger(n)
        p = prediction(liq, {0: 0.004, 3: 0.004, 7: 0.004})
        assert decide(state, account(), p, liq, CONFIG) == decide(restored, account(), p, liq, CONFIG)


def test_client_order_ids_are_deterministic_unique_and_fit_the_venue() -> None:
    arms = [a.key() for a in GRID.arms()]
    ids = {entry_order_id(VENUE, SYMBOL, f"decision-{n}", arm) for n in range(500) for arm in arms}
    exits = {exit_order_id(i) for i in ids}
    assert len(ids) == 500 * len(arms) and len(exits) == len(ids) and not ids & exits
    assert {len(i) for i in ids | exits} == {34} and MAX_CLIENT_ID_CHARS >= 34
    assert entry_order_id(VENUE, SYMBOL, "d", arms[0]) == entry_order_id(VENUE, SYMBOL, "d", arms[0])
    assert entry_order_id("bybit-spot", SYMBOL, "d", arms[0]) != entry_order_id(VENUE, SYMBOL, "d", arms[0])
    assert all(i.isalnum() for i in ids)


def test_a_top_of_book_record_is_kept_and_the_state_pickles() -> None:
    state = fresh()
    top = state.top
    assert isinstance(top, TopOfBook)
    assert pickle.loads(pickle.dumps(state)) == state
