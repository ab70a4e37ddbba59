"""The live path's steps after the features as plain objects: records in, the records they cause out.

The agents call these per record and a replay can chain them in one loop; they hold no I/O and read no clock.
Decide joins a prediction with its trigger liquidation and with the top of book *as of the trigger's event time*
(not as of whenever the prediction arrives), so the same market gives the same intent however the topics
interleave on the way; a prediction waits until its trigger is known.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from liqbot_core import TopsAsOf

from decision.paper import PaperAccount, PaperConfig, PaperVenue, VenueRecord
from decision.risk import AccountRisk, SymbolKey
from decision.strategy import Decision, StrategyConfig, SymbolStrategy, decide
from schemas.records import (
    BookUpdate,
    FeatureVector,
    FundingRate,
    Instrument,
    Liquidation,
    OrderCancel,
    OrderEvent,
    OrderIntent,
    Position,
    Prediction,
    Side,
    Ticker,
    TopOfBook,
    Trade,
)

__all__ = ["DecideStep", "DecisionHook", "ExecuteStep", "PredictStep", "Predictor"]

log = logging.getLogger(__name__)
# Per symbol, at least this many of the newest tops a prediction may still be joined with (`TopsAsOf` holds up to
# twice as many, then drops the oldest half at once). Live a prediction lags its trigger by milliseconds; fed a
# backlog at full speed, decide reads the market topics minutes of event time ahead of the predictions.
_TOPS_KEPT = 4096
_TRIGGERS_KEPT = 4096
_DECIDE_MARKET = frozenset({Liquidation, TopOfBook, Trade, Instrument, Ticker})  # market records decide folds in
_EXECUTE_MARKET = frozenset({Trade, TopOfBook, BookUpdate, Ticker, FundingRate})  # and those the venue does


DecisionHook = Callable[[Decision, Liquidation], None]  # each decision and its trigger, as it is made (metrics)


class Predictor(Protocol):
    def predict(self, vector: FeatureVector, side: Side) -> Prediction | None: ...


@dataclass
class PredictStep:
    """A feature vector at a decision point to a prediction; other vectors and skipped ones give nothing."""

    scorer: Callable[[], Predictor]  # the model currently served (it may be reloaded between records)
    counts: Counter[str] = field(default_factory=Counter)

    def on_vector(self, vector: FeatureVector) -> list[Prediction]:
        if vector.side is None:
            self.counts["not_a_decision_point"] += 1
            return []
        prediction = self.scorer().predict(vector, vector.side)
        self.counts["predicted" if prediction else "skipped"] += 1
        return [prediction] if prediction else []


@dataclass
class DecideStep:
    """Predictions, market records and order events of some symbols to order intents and cancel requests."""

    config: StrategyConfig
    account: AccountRisk
    symbols: dict[SymbolKey, SymbolStrategy] = field(default_factory=dict)
    books: dict[SymbolKey, TopsAsOf] = field(default_factory=dict)  # recent tops, for the top as of a time
    triggers: dict[str, Liquidation] = field(default_factory=dict)  # recent liquidations by event id
    waiting: dict[str, Prediction] = field(default_factory=dict)  # predictions whose trigger or book is unknown
    silences: dict[SymbolKey, int] = field(default_factory=dict)  # heartbeat at which the dead-man last fired
    counts: Counter[str] = field(default_factory=Counter)

    def symbol(self, venue: str, symbol: str) -> SymbolStrategy:
        key = (venue, symbol)
        state = self.symbols.get(key)
        if state is None:
            state = self.symbols[key] = SymbolStrategy.new(venue, symbol, self.config.risk)
        return state

    def on_record(self, record: object, on_decision: DecisionHook | None = None) -> list[OrderIntent | OrderCancel]:
        """Fold one record; returns the intents and cancel requests it caused (each decision also to `on_decision`)."""
        kind = type(record)  # records are final classes: one set lookup, not a chain of isinstance on unions
        if kind in _DECIDE_MARKET:
            return self._market(record, on_decision)  # type: ignore[arg-type]  # narrowed by its type, above
        if isinstance(record, Prediction):
            self.waiting[record.event_id] = record
            return self._ready(record.venue, record.symbol, on_decision)
        if isinstance(record, OrderEvent):
            self.symbol(record.venue, record.symbol).on_order_event(record, self.account, self.config.risk)
            return []
        if isinstance(record, Position):
            return self._position(record)
        self.counts["ignored"] += 1
        return []

    def on_clock(self, idle_ns: int) -> list[OrderIntent | OrderCancel]:
        """Nothing arrived for `idle_ns` of wall time (the agent's timer): the dead-man switch, once per silence.

        Each symbol's event time is taken to have moved on by as much, so replayed history is judged like live.
        """
        out: list[OrderIntent | OrderCancel] = []
        for state in self.symbols.values():
            heartbeat = state.risk.heartbeat_ns
            if heartbeat is None or self.silences.get(state.key) == heartbeat:
                continue
            if not state.orders.exposure().live_orders:
                continue  # nothing rests: nothing to cancel
            reason = state.risk.heartbeat_lost(heartbeat + idle_ns, self.config.risk)
            if reason is not None:
                self.silences[state.key] = heartbeat
                out.append(_cancel(state, heartbeat + idle_ns, 0, f"dead-man:{heartbeat}", reason))
        return out

    def on_kill(self, reason: str | None, command_id: str | None, now_ns: int) -> list[OrderIntent | OrderCancel]:
        """The operator's kill switch as now in force: engaged, every symbol's resting orders are cancelled and the
        risk gate refuses every intent until it is cleared (None)."""
        if self.account.kill_switch == reason:
            return []
        self.account.set_kill_switch(reason)
        if reason is None:
            return []
        # at each symbol's own event time, as the dead-man's cancels: the paper venue's clock is event time
        return [_cancel(s, s.risk.heartbeat_ns or now_ns, 0, f"kill:{command_id}", f"kill switch: {reason}")
                for s in self.symbols.values()]

    def _market(self, record: Liquidation | TopOfBook | Trade | Instrument | Ticker,
                on_decision: DecisionHook | None) -> list[OrderIntent | OrderCancel]:
        state = self.symbol(record.venue, record.symbol)
        out: list[OrderIntent | OrderCancel] = []
        reason = state.on_record(record, self.config.risk)
        if reason is not None and state.orders.exposure().live_orders:
            out.append(_cancel(state, record.ts_event_ns, record.ts_recv_ns, f"risk:{record.event_id}", reason))
        if isinstance(record, TopOfBook):
            book = self.books.get(state.key)
            if book is None:
                book = self.books[state.key] = TopsAsOf(_TOPS_KEPT)
            book.add(record)
        elif isinstance(record, Liquidation):
            self.triggers[record.event_id] = record
            if len(self.triggers) > _TRIGGERS_KEPT:
                del self.triggers[next(iter(self.triggers))]
        return out + self._ready(record.venue, record.symbol, on_decision) if self.waiting else out

    def _position(self, position: Position) -> list[OrderIntent | OrderCancel]:
        halted = self.account.on_position(position, self.config.risk)
        if halted is None:
            return []
        return [_cancel(s, position.ts_event_ns, 0, f"halt:{position.event_id}", halted)
                for s in self.symbols.values()]

    def _ready(self, venue: str, symbol: str, on_decision: DecisionHook | None) -> list[OrderIntent | OrderCancel]:
        """Decide every waiting prediction of the symbol whose trigger and book are now known."""
        out: list[OrderIntent | OrderCancel] = []
        for event_id, prediction in list(self.waiting.items()):
            if (prediction.venue, prediction.symbol) != (venue, symbol):
                continue
            trigger = self.triggers.get(event_id)
            if trigger is None:
                continue
            book = self.books.get((venue, symbol))
            top = book.as_of(prediction.ts_event_ns) if book else None  # a TopOfBook made: only once it can be used
            if top is None:
                continue
            del self.waiting[event_id]
            state = self.symbol(venue, symbol)
            newest, state.top = state.top, top
            decision = decide(state, self.account, prediction, trigger, self.config)
            state.top = newest
            self.counts[decision.code] += 1
            for rule in decision.rules:
                self.counts[f"refused:{rule}"] += 1
            if on_decision is not None:
                on_decision(decision, trigger)
            if decision.intent is not None:
                out.append(decision.intent)
        return out


def _cancel(state: SymbolStrategy, ts_ns: int, ts_recv_ns: int, event_id: str, reason: str) -> OrderCancel:
    log.warning("cancel all %s %s: %s", state.venue, state.symbol, reason)
    return OrderCancel(venue=state.venue, symbol=state.symbol, event_id=f"{state.venue}:{state.symbol}:{event_id}",
                       ts_event_ns=ts_ns, ts_recv_ns=ts_recv_ns, client_order_id=None, reason=reason)


@dataclass
class ExecuteStep:
    """Intents, cancel requests and market records of some symbols through the paper venue (book updates matter only
    to a queue model)."""

    venue: PaperVenue = field(default_factory=lambda: PaperVenue(PaperConfig(), PaperAccount(100_000.0)))

    def on_record(self, record: object) -> list[VenueRecord]:
        if type(record) in _EXECUTE_MARKET:
            return self.venue.on_record(record)  # type: ignore[arg-type]  # narrowed by its type
        if isinstance(record, OrderIntent):
            return self.venue.submit(record)
        if isinstance(record, OrderCancel):
            return self.venue.cancel_all(record.venue, record.symbol, record.ts_event_ns, record.ts_recv_ns,
                                         record.reason, cancel_id=record.event_id)
        return []
