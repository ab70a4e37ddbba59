"""From a prediction at a liquidation to at most one order intent: positive arms, Thompson sampling, risk, ticks.

`decide` is the whole decision: it refuses (and says why, with a stable code that is counted) on a duplicate
prediction, a prediction that does not belong to its trigger, a NaN or out-of-range model output, a missing,
stale or crossed book, a missing instrument, a risk gate, no arm with a positive expected net return, a Thompson
draw that says no arm beats doing nothing, a size below the instrument's minimum, or a failed order check.
Otherwise the intent it returns passed every rule, and its client order id is a function of the decision alone.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from decision.arms import Arm, entry_side, limit_price
from decision.bandit import BanditConfig, Posteriors
from decision.ids import RecentIds, entry_order_id
from decision.ledger import OrderTracker, Outcome
from decision.orders import ExitRule, WickOrder
from decision.risk import (
    AccountRisk,
    Proposal,
    RiskLimits,
    SymbolKey,
    SymbolRisk,
    TimedRecord,
    drawdown_warning,
    gate_refusals,
    order_notional,
    order_refusals,
)
from schemas.records import (
    ArmPrediction,
    Instrument,
    Liquidation,
    OrderEvent,
    OrderIntent,
    Prediction,
    Side,
    TopOfBook,
    TradingMode,
)

__all__ = ["Decision", "StrategyConfig", "SymbolStrategy", "decide", "floor_to_step", "round_to_tick"]

log = logging.getLogger(__name__)
_NS_PER_MS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class StrategyConfig:
    mode: TradingMode = "PAPER"
    min_fill_probability: float = 0.05  # an arm that will hardly ever fill is not worth a slot
    order_fraction: float = 0.05  # of equity per order, before the risk caps cut it
    exit_rule: ExitRule = field(default_factory=ExitRule)  # hold H and TP/SL, the same rule the labels used
    bandit: BanditConfig = field(default_factory=BanditConfig)
    max_book_age_ms: int = 5_000  # Bybit's book times trail its trades by up to 2.6 s
    risk: RiskLimits = field(default_factory=RiskLimits)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What `decide` did: an intent, or a refusal `code` (counted) and a `reason` (logged)."""

    intent: OrderIntent | None
    code: str
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    draws: tuple[tuple[str, float], ...] = ()  # (arm key, sampled reward) of every eligible arm
    rules: tuple[str, ...] = ()  # the risk rules that refused (codes risk_gate, risk_order), by name


@dataclass
class SymbolStrategy:
    """What one (venue, symbol) needs to decide: per-symbol state (a Faust table keyed by symbol)."""

    venue: str
    symbol: str
    risk: SymbolRisk
    posteriors: Posteriors = field(default_factory=Posteriors)
    orders: OrderTracker = field(default_factory=OrderTracker)
    top: TopOfBook | None = None
    instrument: Instrument | None = None
    decided: RecentIds = field(default_factory=RecentIds)  # prediction ids already decided
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def new(cls, venue: str, symbol: str, limits: RiskLimits) -> SymbolStrategy:
        return cls(venue, symbol, SymbolRisk.for_limits(limits))

    @property
    def key(self) -> SymbolKey:
        return (self.venue, self.symbol)

    def on_record(self, record: TimedRecord, limits: RiskLimits) -> str | None:
        """Fold a market record of this symbol; returns a cancel-all reason when a risk rule has just tripped."""
        if isinstance(record, TopOfBook):
            self.top = record
        elif isinstance(record, Instrument):
            self.instrument = record
        return self.risk.observe(record, limits)

    def on_order_event(self, event: OrderEvent, account: AccountRisk, limits: RiskLimits) -> Outcome | None:
        """Fold an order event: exposure to the account; an ended order teaches its arm and may trip the breaker."""
        outcome = self.orders.on_event(event)
        account.set_exposure(self.key, self.orders.exposure())
        if outcome is None:
            return None
        if outcome.net_return is not None:
            self.posteriors.update(outcome.arm_key, outcome.net_return - outcome.predicted_reward)
        self.risk.on_outcome(outcome, limits)
        return outcome


def decide(state: SymbolStrategy, account: AccountRisk, prediction: Prediction, trigger: Liquidation,
           config: StrategyConfig) -> Decision:
    """At most one intent for a prediction made at the liquidation `trigger`; counted by code, refusals logged.

    The trigger must already be folded in with `state.on_record`, as every market record of the symbol is.
    """
    if not state.decided.remember(prediction.event_id):
        decision = Decision(intent=None, code="duplicate", reason=f"prediction {prediction.event_id} already decided")
    else:
        decision = _Decider(state, account, prediction, trigger, config).decide()
    state.counts[decision.code] += 1
    if decision.intent is None:
        log.info("no intent for %s %s prediction %s: %s", state.venue, state.symbol, prediction.event_id,
                 decision.reason)
    else:
        state.orders.on_intent(decision.intent)
        account.set_exposure(state.key, state.orders.exposure())
    for warning in decision.warnings:
        log.warning("%s %s: %s", state.venue, state.symbol, warning)
    return decision


def _arm(arm: ArmPrediction) -> Arm:
    return Arm(arm.delta_bps, arm.valid_for_ms)


@dataclass(frozen=True, slots=True)
class _Decider:
    """One decision's inputs, so that its steps need no long argument lists."""

    state: SymbolStrategy
    account: AccountRisk
    prediction: Prediction
    trigger: Liquidation
    config: StrategyConfig

    def decide(self) -> Decision:
        refusal = self._prediction_refusal() or self._market_refusal()
        if refusal is not None:
            return Decision(intent=None, code=refusal[0], reason=refusal[1])
        if refusals := gate_refusals(self.account, self.state.risk, self.prediction.ts_event_ns, self.config.risk):
            return Decision(intent=None, code="risk_gate", reason="; ".join(r for _, r in refusals),
                            rules=tuple(rule for rule, _ in refusals))
        eligible = [a for a in self.prediction.arms
                    if a.expected_net_return > 0 and a.fill_probability >= self.config.min_fill_probability]
        if not eligible:
            return Decision(intent=None, code="no_positive_arm", reason="no arm with a positive expected net return")
        seed = f"{self.state.venue}|{self.state.symbol}|{self.prediction.event_id}"
        draws = [(a, a.fill_probability * a.expected_net_return
                  + self.state.posteriors.draw(_arm(a).key(), seed, self.config.bandit)) for a in eligible]
        shown = tuple((_arm(a).key(), score) for a, score in draws)
        chosen, score = max(draws, key=lambda d: d[1])  # the first of equal draws, in the model's arm order
        if score <= 0:
            return Decision(intent=None, code="thompson_declined", draws=shown,
                            reason=f"best draw {score:.6f} ({_arm(chosen).key()}) does not beat doing nothing")
        return self._order(chosen, shown)

    def _prediction_refusal(self) -> tuple[str, str] | None:
        """(code, reason) when the prediction cannot support a decision at all."""
        prediction, trigger = self.prediction, self.trigger
        ids = (prediction.venue, prediction.symbol, prediction.event_id)
        if ids != (trigger.venue, trigger.symbol, trigger.event_id) or ids[:2] != self.state.key:
            return "trigger_mismatch", f"prediction {ids} is not about {trigger.event_id} of {self.state.key}"
        bad = [a for a in prediction.arms if not (math.isfinite(a.expected_net_return)
                                                  and 0.0 <= a.fill_probability <= 1.0)]
        if bad or not prediction.arms:
            return "bad_prediction", f"NaN, infinite or out-of-range model output: {bad or 'no arms'}"
        return None

    def _market_refusal(self) -> tuple[str, str] | None:
        """(code, reason) when the market state cannot price or size an order."""
        instrument, top = self.state.instrument, self.state.top
        if instrument is None or instrument.status.lower() != "trading":  # Bybit "Trading", Binance "TRADING"
            return "no_instrument", f"instrument {instrument.status if instrument else 'unknown'}"
        if top is None:
            return "no_book", "no top of book yet"
        age_ms = (self.prediction.ts_event_ns - top.ts_event_ns) / _NS_PER_MS
        if age_ms > self.config.max_book_age_ms:
            return "stale_book", f"top of book {age_ms:.0f} ms old (limit {self.config.max_book_age_ms})"
        if not (0 < Decimal(top.bid_price) < Decimal(top.ask_price) and math.isfinite(top.mid)):
            return "crossed_book", f"bid {top.bid_price} ask {top.ask_price} mid {top.mid}"
        return None

    def _order(self, chosen: ArmPrediction, draws: tuple[tuple[str, float], ...]) -> Decision:
        state, config = self.state, self.config
        assert state.top is not None and state.instrument is not None  # checked by _market_refusal
        instrument, mid, side = state.instrument, state.top.mid, entry_side(self.trigger.position_side)
        price = round_to_tick(limit_price(mid, side, chosen.delta_bps), instrument.tick_size, side)
        notional = order_notional(self.account, state.key, side, config.order_fraction, config.risk)
        size = min(floor_to_step(notional / float(price), instrument.qty_step), Decimal(instrument.max_order_qty))
        if not (size >= Decimal(instrument.min_order_qty) and price * size >= Decimal(instrument.min_notional or 0)):
            return Decision(intent=None, code="too_small", draws=draws,
                            reason=f"size {size} at {price} is below the minimum {instrument.min_order_qty} "
                                   f"(notional {notional:,.2f} allowed)")
        proposal = Proposal(venue=state.venue, symbol=state.symbol, side=side, price=float(price),
                            size=float(size), mid=mid)
        if refusals := order_refusals(proposal, self.account, config.risk):
            return Decision(intent=None, code="risk_order", reason="; ".join(r for _, r in refusals), draws=draws,
                            rules=tuple(rule for rule, _ in refusals))
        warning = drawdown_warning(self.account, config.risk)
        return Decision(intent=self._intent(chosen, side, price, size), code="intent", draws=draws,
                        warnings=(warning,) if warning else ())

    def _intent(self, chosen: ArmPrediction, side: Side, price: Decimal, size: Decimal) -> OrderIntent:
        state, prediction, rule = self.state, self.prediction, self.config.exit_rule
        assert state.instrument is not None
        take_profit, stop_loss = _exit_prices(side, price, rule, state.instrument.tick_size)
        return OrderIntent(
            venue=state.venue, symbol=state.symbol,
            client_order_id=entry_order_id(state.venue, state.symbol, prediction.event_id, _arm(chosen).key()),
            ts_event_ns=prediction.ts_event_ns, ts_recv_ns=self.trigger.ts_recv_ns, mode=self.config.mode,
            side=side, price=_text(price), size=_text(size), post_only=True, reduce_only=False,
            valid_for_ms=chosen.valid_for_ms, hold_ms=rule.hold_ms, take_profit_price=take_profit,
            stop_loss_price=stop_loss, delta_bps=chosen.delta_bps, expected_net_return=chosen.expected_net_return,
            fill_probability=chosen.fill_probability, model_version=prediction.model_version,
            prediction_id=prediction.event_id,
        )


def _exit_prices(side: Side, price: Decimal, rule: ExitRule, tick: str) -> tuple[str, str]:
    """TP and SL of the wick order, rounded away from the entry: on the tick grid a trade reaches the rounded price
    exactly when it reaches the exact one, so the venue's attached TP/SL and the paper venue exit at the same trade."""
    order = WickOrder(side=side, price=float(price), placed_ns=0, valid_for_ms=0, exit_rule=rule)
    away: Side = "SELL" if side == "BUY" else "BUY"  # a buy's take-profit sits above: round it as a sell is rounded
    return (_text(round_to_tick(order.take_profit_price, tick, away)),
            _text(round_to_tick(order.stop_loss_price, tick, side)))


def round_to_tick(price: float, tick: str, side: Side) -> Decimal:
    """A buy's price rounds down to the tick, a sell's up: never closer to (or across) the touch than asked."""
    step = Decimal(tick)
    units = (Decimal(repr(price)) / step).to_integral_value(ROUND_FLOOR if side == "BUY" else ROUND_CEILING)
    return units * step


def floor_to_step(size: float, step: str) -> Decimal:
    """Sizes round down to the lot: risk caps are never exceeded by rounding. NaN or negative gives zero."""
    if not size > 0 or not math.isfinite(size):
        return Decimal(0)
    lot = Decimal(step)
    return (Decimal(repr(size)) / lot).to_integral_value(ROUND_FLOOR) * lot


def _text(value: Decimal) -> str:
    return format(value, "f")
