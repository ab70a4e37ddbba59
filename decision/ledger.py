"""The decision side's book of its own orders: intents and order events in, live exposure and outcomes out.

The same events come from the paper venue or the live one, so the bandit and the risk rules learn the same way in
both. An order's outcome is its realised net return on entry notional after the maker fee on entry and the taker
fee on exit (0 when it expired unfilled); funding is not in order events, so it is not in the outcome.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from decision.arms import Arm
from decision.ids import RecentIds, exit_order_id
from schemas.records import OrderEvent, OrderIntent

__all__ = ["Exposure", "LiveOrder", "OrderTracker", "Outcome", "OutcomeStatus"]

OutcomeStatus = Literal["CLOSED", "EXPIRED", "CANCELLED", "REJECTED"]
_UNFILLED_ENDS: dict[str, OutcomeStatus] = {"EXPIRED": "EXPIRED", "CANCELLED": "CANCELLED", "REJECTED": "REJECTED"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one decision ended; `net_return` is None when it says nothing about the arm (cancelled, rejected)."""

    intent: OrderIntent
    status: OutcomeStatus
    ts_event_ns: int
    net_return: float | None

    @property
    def arm_key(self) -> str:
        return Arm(self.intent.delta_bps, self.intent.valid_for_ms).key()

    @property
    def predicted_reward(self) -> float:
        """What the model expected this decision to earn: P(fill) * E[net return | fill]."""
        return self.intent.fill_probability * self.intent.expected_net_return


@dataclass
class LiveOrder:
    """An intent not yet ended: resting until `entry_price` is set, then an open position."""

    intent: OrderIntent
    entry_price: Decimal | None = None
    entry_fee: Decimal = Decimal(0)

    @property
    def notional(self) -> float:
        return float(Decimal(self.intent.price) * Decimal(self.intent.size))


@dataclass(frozen=True, slots=True)
class Exposure:
    """Notional of live orders (resting or filled) by direction, quote units, and how many there are."""

    long_notional: float = 0.0
    short_notional: float = 0.0
    live_orders: int = 0

    @property
    def gross(self) -> float:
        return self.long_notional + self.short_notional


@dataclass
class OrderTracker:
    """One (venue, symbol)'s live orders, by client order id: per-symbol state."""

    live: dict[str, LiveOrder] = field(default_factory=dict)
    exits: dict[str, str] = field(default_factory=dict)  # exit client id -> entry client id
    seen_events: RecentIds = field(default_factory=RecentIds)
    counts: Counter[str] = field(default_factory=Counter)

    def on_intent(self, intent: OrderIntent) -> None:
        self.live[intent.client_order_id] = LiveOrder(intent)
        self.exits[exit_order_id(intent.client_order_id)] = intent.client_order_id

    def on_event(self, event: OrderEvent) -> Outcome | None:
        """Fold one order event; returns the outcome when it ended an order."""
        if not self.seen_events.remember(event.event_id):
            self.counts["duplicate_event"] += 1
            return None
        entry_id = self.exits.get(event.client_order_id)
        if entry_id is not None and entry_id in self.live:
            return self._exit(self.live[entry_id], event)
        order = self.live.get(event.client_order_id)
        if order is None:
            self.counts["unknown_order"] += 1
            return None
        if event.status == "FILLED":
            order.entry_price = Decimal(event.last_fill_price or event.price)
            order.entry_fee = Decimal(event.fee or "0")
        elif event.status in _UNFILLED_ENDS and order.entry_price is None:
            status = _UNFILLED_ENDS[event.status]
            return self._end(order, status, event.ts_event_ns, 0.0 if status == "EXPIRED" else None)
        elif event.status != "ACCEPTED":
            self.counts[f"unexpected_{event.status.lower()}"] += 1  # partial fills: not produced by the paper venue
        return None

    def _exit(self, order: LiveOrder, event: OrderEvent) -> Outcome | None:
        if event.status != "FILLED" or order.entry_price is None:
            self.counts["unexpected_exit_event"] += 1
            return None
        size, exit_price = Decimal(event.last_fill_size or event.size), Decimal(event.last_fill_price or event.price)
        direction = 1 if order.intent.side == "BUY" else -1
        pnl = direction * (exit_price - order.entry_price) * size - order.entry_fee - Decimal(event.fee or "0")
        return self._end(order, "CLOSED", event.ts_event_ns, float(pnl / (order.entry_price * size)))

    def _end(self, order: LiveOrder, status: OutcomeStatus, ts_ns: int, net_return: float | None) -> Outcome:
        client_id = order.intent.client_order_id
        del self.live[client_id]
        del self.exits[exit_order_id(client_id)]
        self.counts[status.lower()] += 1
        return Outcome(intent=order.intent, status=status, ts_event_ns=ts_ns, net_return=net_return)

    def exposure(self) -> Exposure:
        long_ = sum(o.notional for o in self.live.values() if o.intent.side == "BUY")
        short = sum(o.notional for o in self.live.values() if o.intent.side == "SELL")
        return Exposure(long_, short, len(self.live))
