"""The live path's steps after the features as plain objects: records in, the records they cause out.

The agents call these per record and a replay can chain them in one loop; they hold no I/O and read no clock.
Decide joins a prediction with its trigger liquidation and with the top of book *as of the trigger's event time*
(not as of whenever the prediction arrives), so the same market gives the same intent however the topics
interleave on the way; a prediction waits until its trigger is known.
"""

from __future__ import annotations

import bisect
import logging
import operator
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from decision.paper import PaperAccount, PaperConfig, PaperVenue, VenueRecord
from decision.risk import AccountRisk, SymbolKey
from decision.strategy import StrategyConfig, SymbolStrategy, decide
from schemas.records import (
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

__all__ = ["DecideStep", "ExecuteStep", "PredictStep", "Predictor"]

log = logging.getLogger(__name__)
# Per symbol, the tops a prediction may still be joined with. Live a prediction lags its trigger by milliseconds;
# fed a backlog at full speed, decide reads the market topics minutes of event time ahead of the predictions.
_TOPS_KEPT = 4096
_TRIGGERS_KEPT = 4096
_TOP_FIELDS = tuple(f.name for f in fields(TopOfBook))
_top_row = operator.attrgetter(*_TOP_FIELDS)


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
class _SymbolBook:
    """Recent book tickers of one symbol in event-time order, for the top as of a past time."""

    times: deque[int] = field(default_factory=deque)
    tops: deque[TopOfBook] = field(default_factory=deque)

    def add(self, top: TopOfBook) -> None:
        if self.times and top.ts_event_ns < self.times[-1]:
            return  # out of order: the newer top already stands for this time
        self.times.append(top.ts_event_ns)
        self.tops.append(top)
        if len(self.times) > _TOPS_KEPT:
            self.times.popleft()
            self.tops.popleft()

    def as_of(self, ts_ns: int) -> TopOfBook | None:
        """The newest top at or before `ts_ns` (the agent's event-time merge has delivered every earlier one)."""
        index = bisect.bisect_right(self.times, ts_ns)
        return self.tops[index - 1] if index else None

    def __getstate__(self) -> tuple[list[int], list[tuple[Any, ...]]]:
        # thousands of tops per symbol: as rows of plain values they pickle 2-3x faster than as dataclasses, and
        # the agent's snapshot blocks its thread while it pickles
        return list(self.times), list(map(_top_row, self.tops))

    def __setstate__(self, state: tuple[list[int], list[tuple[Any, ...]]]) -> None:
        times, rows = state
        self.times = deque(times)
        self.tops = deque(TopOfBook(**dict(zip(_TOP_FIELDS, row, strict=True))) for row in rows)


@dataclass
class DecideStep:
    """Predictions, market records and order events of some symbols to order intents and cancel requests."""

    config: StrategyConfig
    account: AccountRisk
    symbols: dict[SymbolKey, SymbolStrategy] = field(default_factory=dict)
    books: dict[SymbolKey, _SymbolBook] = field(default_factory=dict)
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

    def on_record(self, record: object) -> list[OrderIntent | OrderCancel]:
        """Fold one record; returns the intents and cancel requests it caused."""
        if isinstance(record, Prediction):
            self.waiting[record.event_id] = record
            return self._ready(record.venue, record.symbol)
        if isinstance(record, OrderEvent):
            self.symbol(record.venue, record.symbol).on_order_event(record, self.account, self.config.risk)
            return []
        if isinstance(record, Position):
            return self._position(record)
        if isinstance(record, Liquidation | TopOfBook | Trade | Instrument | Ticker):
            return self._market(record)
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

    def _market(self, record: Liquidation | TopOfBook | Trade | Instrument | Ticker) -> list[OrderIntent | OrderCancel]:
        state = self.symbol(record.venue, record.symbol)
        out: list[OrderIntent | OrderCancel] = []
        reason = state.on_record(record, self.config.risk)
        if reason is not None and state.orders.exposure().live_orders:
            out.append(_cancel(state, record.ts_event_ns, record.ts_recv_ns, f"risk:{record.event_id}", reason))
        if isinstance(record, TopOfBook):
            self.books.setdefault(state.key, _SymbolBook()).add(record)
        elif isinstance(record, Liquidation):
            self.triggers[record.event_id] = record
            if len(self.triggers) > _TRIGGERS_KEPT:
                del self.triggers[next(iter(self.triggers))]
        return out + self._ready(record.venue, record.symbol)

    def _position(self, position: Position) -> list[OrderIntent | OrderCancel]:
        halted = self.account.on_position(position, self.config.risk)
        if halted is None:
            return []
        return [_cancel(s, position.ts_event_ns, 0, f"halt:{position.event_id}", halted)
                for s in self.symbols.values()]

    def _ready(self, venue: str, symbol: str) -> list[OrderIntent | OrderCancel]:
        """Decide every waiting prediction of the symbol whose trigger and book are now known."""
        out: list[OrderIntent | OrderCancel] = []
        for event_id, prediction in list(self.waiting.items()):
            if (prediction.venue, prediction.symbol) != (venue, symbol):
                continue
            trigger = self.triggers.get(event_id)
            book = self.books.get((venue, symbol))
            top = book.as_of(prediction.ts_event_ns) if book else None
            if trigger is None or top is None:
                continue
            del self.waiting[event_id]
            state = self.symbol(venue, symbol)
            newest, state.top = state.top, top
            decision = decide(state, self.account, prediction, trigger, self.config)
            state.top = newest
            self.counts[decision.code] += 1
            if decision.intent is not None:
                out.append(decision.intent)
        return out


def _cancel(state: SymbolStrategy, ts_ns: int, ts_recv_ns: int, event_id: str, reason: str) -> OrderCancel:
    log.warning("cancel all %s %s: %s", state.venue, state.symbol, reason)
    return OrderCancel(venue=state.venue, symbol=state.symbol, event_id=f"{state.venue}:{state.symbol}:{event_id}",
                       ts_event_ns=ts_ns, ts_recv_ns=ts_recv_ns, client_order_id=None, reason=reason)


@dataclass
class ExecuteStep:
    """Intents, cancel requests and market records of some symbols through the paper venue."""

    venue: PaperVenue = field(default_factory=lambda: PaperVenue(PaperConfig(), PaperAccount(100_000.0)))

    def on_record(self, record: object) -> list[VenueRecord]:
        if isinstance(record, OrderIntent):
            return self.venue.submit(record)
        if isinstance(record, OrderCancel):
            return self.venue.cancel_all(record.venue, record.symbol, record.ts_event_ns, record.ts_recv_ns,
                                         record.reason)
        if isinstance(record, Trade | TopOfBook | Ticker | FundingRate):
            return self.venue.on_record(record)
        return []
