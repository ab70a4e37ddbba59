"""The paper venue: order intents and market records in, order events and positions out.

Every fill, expiry and exit is `WickOrder`'s (the class the training labels run): a post-only limit fills only on
a trade printed strictly through its price, is cancelled T after placement, and is closed by a taker exit at the
first trade after H or at TP/SL. This module adds what a venue adds around it: the post-only check against the
book at placement, fees in quote units, funding at each funding time crossed, order events, positions and equity.

Only trades move the venue's clock (the symbol's newest trade time): a fill, an exit and an expiry all happen at a
trade, so the outcome depends on the one ordered trade stream of the symbol, not on how other topics interleave
with it (an expiry found at a later trade is still stamped placement + T). A trade older than the clock is skipped
and counted (the orders have moved on: it cannot be replayed into their past), and so is a trade id seen before.
Books and tickers only update state: the top of book for the post-only check at placement, the funding schedule.
An intent is placed at max(its decision time, the clock): the venue sees it only when it arrives.

How an order appears: the entry order (the intent's client id) emits ACCEPTED or REJECTED, then FILLED (maker),
EXPIRED (at exactly placement + T) or CANCELLED; the exit is a reduce-only taker order with its own id
(`exit_order_id`) that emits one FILLED event whose reason is TAKE_PROFIT, STOP_LOSS or HOLD_ELAPSED.
Event ids are client_order_id:sequence. Position.realised_pnl is gross of fees and funding, which are kept apart;
equity = starting equity + realised - fees - funding + unrealised, summed over symbols.

Realism (docs/backtest.md, Realism; off by default). Latency (`decision.latency`): an entry is at the venue only at
arrival = max(decision time, clock) + entry latency, a cancel-all takes effect at max(request, clock) + cancel
latency; each draw is keyed by the client order id or the cancel's event id. In flight they wait; the first trade,
top of book or book update of the symbol *after* their time lands them, in time order, before it is folded: the
post-only check, the book's queue and ACCEPTED/REJECTED are as of arrival (stamped then), T counts from arrival,
and fills before a cancel's effect stand. Queue (`decision.queue`): a trade at the price fills once the size ahead
in the recorded book (market.book) is used up.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from decision.ids import RecentIds, exit_order_id, order_event_id
from decision.latency import ConstantLatency, LatencyModel, draw_ns
from decision.orders import ExitRule, Fees, Transition, WickOrder
from decision.queue import QueueModel, QueuePosition, VenueBook, queue_ahead
from decision.risk import SymbolKey, TimedRecord
from schemas.records import (
    BookUpdate,
    FundingRate,
    Liquidity,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    Position,
    Side,
    Ticker,
    TopOfBook,
    Trade,
    TradingMode,
)

__all__ = ["PaperAccount", "PaperConfig", "PaperOrder", "PaperSymbol", "PaperVenue", "VenueRecord"]

log = logging.getLogger(__name__)
VenueRecord = OrderEvent | Position
_NS_PER_MS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class PaperConfig:
    fees: Fees = field(default_factory=Fees)
    exit_rule: ExitRule = field(default_factory=ExitRule)  # TP/SL in bps; the hold H comes from each intent
    mark_interval_ms: int = 1_000  # an open position is re-marked (a Position record) at most this often
    mode: TradingMode = "PAPER"
    entry_latency: LatencyModel = field(default_factory=ConstantLatency)  # decision to order at the venue
    cancel_latency: LatencyModel = field(default_factory=ConstantLatency)  # cancel request to its effect
    latency_seed: int = 0  # another seed, other (equally deterministic) draws
    queue: QueueModel = field(default_factory=QueueModel)  # fills at the price from the queue ahead (needs market.book)

    def shaping(self) -> dict[str, Any]:
        """`asdict`, less the realism settings left at their defaults: a run's config hash without latency or queue
        model is the one it was before they existed."""
        default, shaping = PaperConfig(), asdict(self)
        for name in _REALISM:
            if getattr(self, name) == getattr(default, name):
                del shaping[name]
        return shaping


_REALISM = ("entry_latency", "cancel_latency", "latency_seed", "queue")


@dataclass(frozen=True)
class InFlight:
    """An entry (`intent`) or a cancel-all (`reason`) on its way to the venue, there at `at_ns`."""

    at_ns: int
    intent: OrderIntent | None = None
    ts_recv_ns: int = 0
    reason: str = ""


def _arrival(item: InFlight) -> tuple[int, int]:
    """In time order; at one time an entry lands before a cancel (the cancel-all then cancels it)."""
    return item.at_ns, 0 if item.intent is not None else 1


@dataclass
class PaperAccount:
    """Account-wide: starting equity and every symbol's net PnL (realised - fees - funding + unrealised)."""

    starting_equity: float
    pnl: dict[SymbolKey, float] = field(default_factory=dict)

    def equity(self) -> float:
        return self.starting_equity + sum(self.pnl.values())


@dataclass
class PaperOrder:
    """One intent at the venue and the `WickOrder` that decides its life."""

    intent: OrderIntent
    wick: WickOrder
    events: int = 0  # events emitted under the entry's client id
    queue: QueuePosition | None = None  # with a queue model: the size ahead at its level

    @property
    def size(self) -> Decimal:
        return Decimal(self.intent.size)

    @property
    def notional(self) -> Decimal:
        return Decimal(self.intent.price) * self.size


@dataclass
class PaperSymbol:
    """Per-symbol venue state: live orders, clock, book, funding schedule and PnL accumulators (quote units)."""

    venue: str
    symbol: str
    orders: dict[str, PaperOrder] = field(default_factory=dict)  # live (resting or open), by client id
    client_ids: RecentIds = field(default_factory=RecentIds)
    trade_ids: RecentIds = field(default_factory=RecentIds)
    watermark_ns: int = -1
    top: TopOfBook | None = None
    last_price: Decimal | None = None
    funding_schedule: dict[int, float | None] = field(default_factory=dict)  # funding time -> rate (None: unknown)
    funded_until_ns: int = -1  # the newest funding time already charged
    realised_pnl: float = 0.0
    fees_paid: float = 0.0
    funding_paid: float = 0.0
    last_mark_ns: int = -1
    counts: Counter[str] = field(default_factory=Counter)
    in_flight: list[InFlight] = field(default_factory=list)  # entries and cancels not at the venue yet, by arrival
    book: VenueBook = field(default_factory=VenueBook)  # the recorded L2 book (read with a queue model only)

    @property
    def key(self) -> SymbolKey:
        return (self.venue, self.symbol)

    # -- intents -----------------------------------------------------------------------------------------------

    def submit(self, intent: OrderIntent, config: PaperConfig) -> list[VenueRecord]:
        """Send an intent: placed at once without latency, else in flight until it arrives; a client id seen before
        changes nothing."""
        if not self.client_ids.remember(intent.client_order_id):
            self.counts["duplicate_intent"] += 1
            return []
        sent_ns = max(intent.ts_event_ns, self.watermark_ns)
        latency_ns = draw_ns(config.entry_latency, config.latency_seed, "entry", intent.client_order_id)
        if latency_ns > 0:
            self.counts["in_flight"] += 1
            bisect.insort(self.in_flight, InFlight(sent_ns + latency_ns, intent), key=_arrival)
            return []
        out = self._arrive(sent_ns, config)  # what landed before it (a cancel must not reach this order)
        return out + self._place(intent, sent_ns, config)

    def _place(self, intent: OrderIntent, placed_ns: int, config: PaperConfig) -> list[VenueRecord]:
        """The intent at the venue at `placed_ns`: ACCEPTED, or REJECTED with the reason."""
        rule = ExitRule(hold_ms=intent.hold_ms, take_profit_bps=config.exit_rule.take_profit_bps,
                        stop_loss_bps=config.exit_rule.stop_loss_bps)
        order = PaperOrder(intent, WickOrder(side=intent.side, price=float(intent.price), placed_ns=placed_ns,
                                             valid_for_ms=intent.valid_for_ms, exit_rule=rule, fees=config.fees))
        reason = self._rejection(intent)
        if reason is not None:
            self.counts["rejected"] += 1
            log.info("paper venue rejects %s: %s", intent.client_order_id, reason)
            return [self._event(order, "REJECTED", placed_ns, intent.ts_recv_ns, reason=reason)]
        self.orders[intent.client_order_id] = order
        self.counts["accepted"] += 1
        if config.queue.on:
            order.queue = QueuePosition(queue_ahead(intent.side, order.wick.price, self.top, self.book))
        return [self._event(order, "ACCEPTED", placed_ns, intent.ts_recv_ns)]

    def _arrive(self, now_ns: int, config: PaperConfig, *, at: bool = False) -> list[VenueRecord]:
        """Land what is in flight and due before `now_ns` (or at it, with `at`), in time order."""
        out: list[VenueRecord] = []
        while self.in_flight and (self.in_flight[0].at_ns < now_ns or (at and self.in_flight[0].at_ns == now_ns)):
            item = self.in_flight.pop(0)
            if item.intent is not None:
                out += self._place(item.intent, item.at_ns, config)
            else:
                out += self._cancel_resting(item.at_ns, item.ts_recv_ns, item.reason)
        return out

    def _rejection(self, intent: OrderIntent) -> str | None:
        price, size = Decimal(intent.price), Decimal(intent.size)
        if not (price.is_finite() and size.is_finite() and price > 0 and size > 0):
            return f"invalid price {intent.price} or size {intent.size}"
        if intent.reduce_only:
            return "reduce-only entries are not supported (exits are the venue's own)"
        return self._crossing(intent) if intent.post_only else None

    def _crossing(self, intent: OrderIntent) -> str | None:
        """Why a post-only order would take liquidity at placement (or cannot be checked), if it would."""
        price = Decimal(intent.price)
        if self.top is None:
            return "post-only: no top of book to check against"
        if intent.side == "BUY" and price >= Decimal(self.top.ask_price):
            return f"post-only: buy at {intent.price} would cross the ask {self.top.ask_price}"
        if intent.side == "SELL" and price <= Decimal(self.top.bid_price):
            return f"post-only: sell at {intent.price} would cross the bid {self.top.bid_price}"
        return None

    def cancel_all(self, ts_ns: int, ts_recv_ns: int, reason: str, config: PaperConfig, *,
                   cancel_id: str = "") -> list[VenueRecord]:
        """Cancel every resting order (kill switch, dead-man, halt, breaker) at once, or when the cancel arrives;
        open positions keep their exits."""
        sent_ns = max(ts_ns, self.watermark_ns)
        latency_ns = draw_ns(config.cancel_latency, config.latency_seed, "cancel", cancel_id)
        if latency_ns > 0:
            self.counts["cancel_in_flight"] += 1
            bisect.insort(self.in_flight, InFlight(sent_ns + latency_ns, ts_recv_ns=ts_recv_ns, reason=reason),
                          key=_arrival)
            return []
        return self._arrive(sent_ns, config, at=True) + self._cancel_resting(sent_ns, ts_recv_ns, reason)

    def _cancel_resting(self, ts_ns: int, ts_recv_ns: int, reason: str) -> list[VenueRecord]:
        out: list[VenueRecord] = []
        for client_id, order in list(self.orders.items()):
            if order.wick.state == "RESTING":
                del self.orders[client_id]
                self.counts["cancelled"] += 1
                out.append(self._event(order, "CANCELLED", ts_ns, ts_recv_ns, reason=reason))
        return out

    # -- market records ----------------------------------------------------------------------------------------

    def on_record(self, record: TimedRecord, config: PaperConfig, account: PaperAccount) -> list[VenueRecord]:
        """Fold one market record of this symbol; returns the order events and positions it caused."""
        out = self._arrive(record.ts_event_ns, config) if self.in_flight and isinstance(
            record, Trade | TopOfBook | BookUpdate) else []
        if isinstance(record, Trade):
            return out + self._trade(record, config, account)
        if isinstance(record, TopOfBook):
            self.top = record
        elif isinstance(record, BookUpdate):
            if config.queue.on:
                self._book(record, config.queue)
        elif isinstance(record, FundingRate):  # a rate applied at its own time
            self._schedule_funding(record.ts_event_ns, float(record.funding_rate))
        elif isinstance(record, Ticker):  # the next funding time and the rate that will apply
            self._schedule_funding(record.next_funding_time_ns,
                                   None if record.funding_rate is None else float(record.funding_rate))
        return out

    def _book(self, update: BookUpdate, model: QueueModel) -> None:
        """Fold a book update; each resting order's queue follows its level's change."""
        queued = [o for o in self.orders.values() if o.queue is not None and o.wick.state == "RESTING"]
        before = [self.book.size_at(o.wick.side, o.wick.price) for o in queued]
        self.book.fold(update)
        for order, prev in zip(queued, before, strict=True):
            new = self.book.size_at(order.wick.side, order.wick.price)
            if new is not None and new != prev and order.queue is not None:
                order.queue.on_level(model, prev, new)

    def _schedule_funding(self, time_ns: int | None, rate: float | None) -> None:
        """A funding time and the rate that applies at it (the newest word on a time wins)."""
        if time_ns is None or time_ns <= self.funded_until_ns:
            self.counts["funding_time_unknown" if time_ns is None else "funding_already_charged"] += 1
            return
        known = self.funding_schedule.get(time_ns)
        self.funding_schedule[time_ns] = rate if rate is not None and math.isfinite(rate) else known

    def _advance(self, ts_ns: int, ts_recv_ns: int, config: PaperConfig, account: PaperAccount) -> list[VenueRecord]:
        """A trade moved the clock to `ts_ns`: funding times passed are charged, orders past T expire."""
        if ts_ns <= self.watermark_ns:
            return []
        self.watermark_ns = ts_ns
        out = self._charge_funding(ts_ns, config, account)
        for client_id, order in list(self.orders.items()):
            if order.wick.advance(ts_ns) == "EXPIRED":
                out.append(self._expire(client_id, order, ts_recv_ns))
        return out

    def _expire(self, client_id: str, order: PaperOrder, ts_recv_ns: int) -> OrderEvent:
        del self.orders[client_id]
        self.counts["expired"] += 1
        return self._event(order, "EXPIRED", order.wick.expires_ns, ts_recv_ns,
                           reason=f"unfilled after T = {order.intent.valid_for_ms} ms")

    def _charge_funding(self, ts_ns: int, config: PaperConfig, account: PaperAccount) -> list[VenueRecord]:
        """Charge every funding time passed, in order, to the positions open at that time."""
        out: list[VenueRecord] = []
        for funding_ns in sorted(t for t in self.funding_schedule if t <= ts_ns):
            rate = self.funding_schedule.pop(funding_ns)
            self.funded_until_ns = funding_ns
            if rate is None:
                self.counts["funding_rate_unknown"] += 1
                log.warning("paper venue: no funding rate known for %s at %d", self.symbol, funding_ns)
            elif self._charge(funding_ns, rate):
                self.counts["funding_charged"] += 1
                out.append(self._position(f"{self.symbol}:funding:{funding_ns}", funding_ns, config, account))
        return out

    def _charge(self, funding_ns: int, rate: float) -> bool:
        """Funding on entry notional (as `WickOrder` counts it) of positions filled before the funding time."""
        charged = False
        for order in self.orders.values():
            wick = order.wick
            if wick.state == "OPEN" and wick.fill_ns is not None and wick.fill_ns < funding_ns:
                before = wick.funding
                wick.on_funding(rate)
                self.funding_paid += (wick.funding - before) * float(order.notional)
                charged = True
        return charged

    def _trade(self, trade: Trade, config: PaperConfig, account: PaperAccount) -> list[VenueRecord]:
        if trade.ts_event_ns < self.watermark_ns:
            self.counts["late_trade"] += 1
            log.debug("paper venue skips late trade %s %d < %d", trade.event_id, trade.ts_event_ns, self.watermark_ns)
            return []
        if not self.trade_ids.remember(trade.event_id):
            self.counts["duplicate_trade"] += 1
            return []
        out = self._advance(trade.ts_event_ns, trade.ts_recv_ns, config, account)
        self.last_price, price = Decimal(trade.price), float(trade.price)
        changed = False
        for client_id, order in list(self.orders.items()):
            transition = order.wick.on_trade(trade.ts_event_ns, price, at_front=self._at_front(order, trade, price))
            if transition is not None:
                out.append(self._transition(client_id, order, transition, trade, config))
                changed = changed or transition != "EXPIRED"
        has_position = any(o.wick.state == "OPEN" for o in self.orders.values())
        if changed or (has_position and trade.ts_event_ns - self.last_mark_ns >= config.mark_interval_ms * _NS_PER_MS):
            event_id = out[-1].event_id if changed else f"{self.symbol}:mark:{trade.event_id}"
            out.append(self._position(event_id, trade.ts_event_ns, config, account))
        return out

    @staticmethod
    def _at_front(order: PaperOrder, trade: Trade, price: float) -> bool:
        """A trade at a queued order's price, after its placement, takes from the queue: whether it reached it."""
        queue, wick = order.queue, order.wick
        if queue is None or wick.state != "RESTING" or price != wick.price or trade.ts_event_ns <= wick.placed_ns:
            return False
        return queue.on_trade(float(trade.size))

    def _transition(self, client_id: str, order: PaperOrder, transition: Transition, trade: Trade,
                    config: PaperConfig) -> OrderEvent:
        if transition == "EXPIRED":
            return self._expire(client_id, order, trade.ts_recv_ns)
        if transition == "FILLED":
            fee = order.notional * Decimal(repr(config.fees.maker_rate))
            self.fees_paid += float(fee)
            self.counts["filled"] += 1
            return self._event(order, "FILLED", trade.ts_event_ns, trade.ts_recv_ns, fill_price=order.intent.price,
                               fee=fee, liquidity="MAKER")
        exit_price = Decimal(trade.price)
        fee = exit_price * order.size * Decimal(repr(config.fees.taker_rate))
        direction = order.wick.direction
        self.realised_pnl += float(direction * (exit_price - Decimal(order.intent.price)) * order.size)
        self.fees_paid += float(fee)
        del self.orders[client_id]
        self.counts[transition.lower()] += 1
        return self._event(order, "FILLED", trade.ts_event_ns, trade.ts_recv_ns, fill_price=trade.price, fee=fee,
                           liquidity="TAKER", reason=transition, exit_=True)

    # -- records out -------------------------------------------------------------------------------------------

    def _event(self, order: PaperOrder, status: OrderStatus, ts_ns: int, ts_recv_ns: int, *,
               fill_price: str | None = None, fee: Decimal | None = None, liquidity: Liquidity | None = None,
               reason: str | None = None, exit_: bool = False) -> OrderEvent:
        intent = order.intent
        if exit_:
            client_id, sequence = exit_order_id(intent.client_order_id), 1
            side: Side = "SELL" if intent.side == "BUY" else "BUY"
        else:
            order.events += 1
            client_id, sequence, side = intent.client_order_id, order.events, intent.side
        filled = fill_price is not None
        return OrderEvent(
            venue=intent.venue, symbol=intent.symbol, event_id=order_event_id(client_id, sequence),
            client_order_id=client_id, venue_order_id=None, ts_event_ns=ts_ns, ts_recv_ns=ts_recv_ns, status=status,
            side=side, price=fill_price if exit_ and fill_price else intent.price, size=intent.size,
            filled_size=intent.size if filled else "0", last_fill_price=fill_price,
            last_fill_size=intent.size if filled else None, fee=None if fee is None else format(fee, "f"),
            liquidity=liquidity, reason=reason,
        )

    def _position(self, event_id: str, ts_ns: int, config: PaperConfig, account: PaperAccount) -> Position:
        open_orders = [o for o in self.orders.values() if o.wick.state == "OPEN"]
        size = sum((o.wick.direction * o.size for o in open_orders), Decimal(0))
        entry = _entry_price(open_orders)
        mark = self.last_price
        unrealised = float(sum((o.wick.direction * (mark - Decimal(o.intent.price)) * o.size for o in open_orders),
                               Decimal(0))) if mark is not None else 0.0
        account.pnl[self.key] = self.realised_pnl - self.fees_paid - self.funding_paid + unrealised
        self.last_mark_ns = ts_ns
        return Position(
            venue=self.venue, symbol=self.symbol, event_id=event_id, ts_event_ns=ts_ns, mode=config.mode,
            size=format(size, "f"), entry_price=entry,
            mark_price=None if mark is None else format(mark, "f"), realised_pnl=self.realised_pnl,
            unrealised_pnl=unrealised, fees_paid=self.fees_paid, funding_paid=self.funding_paid,
            equity=account.equity(),
        )


def _entry_price(orders: list[PaperOrder]) -> str | None:
    """The entry price of the open orders: the venue's own text for one price, else the size-weighted mean."""
    prices = {o.intent.price for o in orders}
    if len(prices) <= 1:
        return prices.pop() if prices else None
    mean = sum((o.notional for o in orders), Decimal(0)) / sum((o.size for o in orders), Decimal(0))
    return format(mean.normalize(), "f")


@dataclass
class PaperVenue:
    """Every symbol of one paper account in one object (replay, tests); agents may keep `PaperSymbol`s apart."""

    config: PaperConfig
    account: PaperAccount
    symbols: dict[SymbolKey, PaperSymbol] = field(default_factory=dict)

    def symbol(self, venue: str, symbol: str) -> PaperSymbol:
        key = (venue, symbol)
        state = self.symbols.get(key)
        if state is None:
            state = self.symbols[key] = PaperSymbol(venue, symbol)
        return state

    def submit(self, intent: OrderIntent) -> list[VenueRecord]:
        return self.symbol(intent.venue, intent.symbol).submit(intent, self.config)

    def on_record(self, record: TimedRecord) -> list[VenueRecord]:
        return self.symbol(record.venue, record.symbol).on_record(record, self.config, self.account)

    def cancel_all(self, venue: str, symbol: str, ts_ns: int, ts_recv_ns: int, reason: str, *,
                   cancel_id: str = "") -> list[VenueRecord]:
        return self.symbol(venue, symbol).cancel_all(ts_ns, ts_recv_ns, reason, self.config, cancel_id=cancel_id)
