"""The paper venue on the real Binance BTCUSDT tape, checked against brute-force scans of that tape.

The capture holds no liquidation, so the decision points are synthetic: every 15 s a hand-made liquidation
(longs and shorts in turn) and a hand-made prediction with one positive arm (a different one each time). All
prices, books and trades are the real tape. The instrument is Bybit's real BTCUSDT listing (tick 0.10, lot 0.001,
Binance's BTCUSDT rules too) under Binance's venue name.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cache
from itertools import pairwise
from typing import Any

import pytest

from agents.steps import execute_step
from decision.arms import ArmGrid
from decision.ids import exit_order_id
from decision.latency import ConstantLatency, LognormalLatency, RecordedLatency, draw_ns
from decision.ledger import Outcome
from decision.orders import ExitRule
from decision.paper import PaperAccount, PaperConfig, PaperSymbol, PaperVenue, VenueRecord
from decision.queue import QueueModel, QueuePosition
from decision.risk import AccountRisk, RiskLimits, TimedRecord
from decision.strategy import StrategyConfig, SymbolStrategy, decide
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from schemas.records import (
    ArmPrediction,
    BookLevel,
    BookUpdate,
    FundingRate,
    Instrument,
    Liquidation,
    OrderEvent,
    OrderIntent,
    Position,
    Prediction,
    Side,
    Ticker,
    TopOfBook,
    Trade,
)
from streams.capture_replay import capture_records
from streams.history.backtest import BacktestConfig
from streams.history.reader import HistoryRange

VENUE, SYMBOL = "binance-usdm", "BTCUSDT"
MS, S = 1_000_000, 1_000_000_000
GRID = ArmGrid(deltas_bps=(0.5, 1.0, 2.0, 5.0), valid_for_ms=(5_000, 30_000))
EXIT = ExitRule(hold_ms=20_000, take_profit_bps=5.0, stop_loss_bps=5.0)
LIMITS = RiskLimits(max_live_orders_per_symbol=1_000, max_position_fraction=10.0, max_correlated_fraction=10.0)
CONFIG = StrategyConfig(exit_rule=EXIT, risk=LIMITS)
PAPER = PaperConfig(exit_rule=EXIT)
EQUITY = 100_000.0
EVERY_NS = 15 * S


@cache
def tape() -> tuple[TimedRecord, ...]:
    """The real records with synthetic liquidations (decision points) every 15 s, up to 60 s before the end."""
    real = [r for r in capture_records(BINANCE_CAPTURE, VENUE) if isinstance(r, Trade | TopOfBook)]
    start, end = real[0].ts_event_ns, real[-1].ts_event_ns
    out: list[TimedRecord] = []
    due, n = start + EVERY_NS, 0
    for record in real:
        if record.ts_event_ns >= due and due < end - 60 * S:
            out.append(_liquidation(n, due, record))
            due, n = due + EVERY_NS, n + 1
        out.append(record)
    return tuple(out)


def _liquidation(n: int, ts_ns: int, after: TimedRecord) -> Liquidation:
    return Liquidation(venue=VENUE, symbol=SYMBOL, event_id=f"{SYMBOL}:synthetic:{n}", ts_event_ns=ts_ns,
                       ts_exchange_ns=ts_ns, ts_recv_ns=after.ts_recv_ns, position_side="LONG" if n % 2 else "SHORT",
                       bankruptcy_price="61700.00", size="0.5", feed="synthetic")


def trades() -> list[Trade]:
    return [r for r in tape() if isinstance(r, Trade)]


@cache
def instrument() -> Instrument:
    bybit = next(r for r in capture_records(BYBIT_CAPTURE, "bybit-linear")
                 if isinstance(r, Instrument) and r.venue == "bybit-linear" and r.symbol == SYMBOL)
    return replace(bybit, venue=VENUE)


def prediction(liq: Liquidation, n: int) -> Prediction:
    """Hand-made model output: arm n of the grid (cycling) is the only positive one."""
    arms = GRID.arms()
    positive = n % len(arms)
    return Prediction(venue=VENUE, symbol=SYMBOL, event_id=liq.event_id, ts_event_ns=liq.ts_event_ns,
                      ts_recv_ns=liq.ts_recv_ns, model_version="hand-made", feature_spec="n/a",
                      arms=tuple(ArmPrediction(delta_bps=a.delta_bps, valid_for_ms=a.valid_for_ms,
                                               expected_net_return=0.004 if i == positive else -0.001,
                                               fill_probability=0.5) for i, a in enumerate(arms)))


@dataclass
class Run:
    """Decide, place and learn, record by record, as the agents will."""

    strategy: SymbolStrategy = field(default_factory=lambda: SymbolStrategy.new(VENUE, SYMBOL, LIMITS))
    account: AccountRisk = field(default_factory=lambda: AccountRisk(starting_equity=EQUITY))
    venue: PaperVenue = field(default_factory=lambda: PaperVenue(PAPER, PaperAccount(starting_equity=EQUITY)))
    intents: list[OrderIntent] = field(default_factory=list)
    out: list[VenueRecord] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    decisions: int = 0

    def step(self, record: TimedRecord) -> None:
        if self.strategy.instrument is None:
            self.strategy.instrument = instrument()
        self.strategy.on_record(record, LIMITS)
        if isinstance(record, Liquidation):
            decision = decide(self.strategy, self.account, prediction(record, self.decisions), record, CONFIG)
            self.decisions += 1
            if decision.intent is not None:
                self.intents.append(decision.intent)
                self.feed(self.venue.submit(decision.intent))
        else:
            self.feed(self.venue.on_record(record))

    def feed(self, records: list[VenueRecord]) -> None:
        for r in records:
            self.out.append(r)
            if isinstance(r, OrderEvent):
                outcome = self.strategy.on_order_event(r, self.account, LIMITS)
                if outcome is not None:
                    self.outcomes.append(outcome)
            else:
                self.account.on_position(r, LIMITS)

    def events(self, client_id: str) -> list[OrderEvent]:
        return [r for r in self.out if isinstance(r, OrderEvent) and r.client_order_id == client_id]

    def positions(self) -> list[Position]:
        return [r for r in self.out if isinstance(r, Position)]


@cache
def full_run() -> Run:
    run = Run()
    for record in tape():
        run.step(record)
    return run


@dataclass(frozen=True)
class Expected:
    """An order's life by brute force: a scan of the tape with nothing but the definitions."""

    fill_ns: int | None
    expired_ns: int | None = None
    exit_ns: int | None = None
    exit_price: str | None = None
    exit_reason: str | None = None
    touched: bool = False  # a trade printed exactly at the limit while it rested


def brute_force(intent: OrderIntent, placed_ns: int) -> Expected:
    limit, sign = Decimal(intent.price), 1 if intent.side == "BUY" else -1
    expires_ns, touched = placed_ns + intent.valid_for_ms * MS, False
    for i, t in enumerate(trades()):
        price = Decimal(t.price)
        if t.ts_event_ns <= placed_ns:
            continue
        if t.ts_event_ns > expires_ns:
            return Expected(fill_ns=None, expired_ns=expires_ns, touched=touched)
        touched = touched or price == limit
        if sign * (limit - price) > 0:  # strictly through: below a buy, above a sell
            return _exit(intent, t.ts_event_ns, trades()[i + 1:], touched)
    return Expected(fill_ns=None, touched=touched)


def _exit(intent: OrderIntent, fill_ns: int, later: list[Trade], touched: bool) -> Expected:
    assert intent.take_profit_price is not None and intent.stop_loss_price is not None
    sign = 1 if intent.side == "BUY" else -1
    tp, sl = Decimal(intent.take_profit_price), Decimal(intent.stop_loss_price)
    for t in later:
        price = Decimal(t.price)
        if t.ts_event_ns <= fill_ns:
            continue
        reason = "TAKE_PROFIT" if sign * (price - tp) >= 0 else "STOP_LOSS" if sign * (price - sl) <= 0 else \
            "HOLD_ELAPSED" if t.ts_event_ns >= fill_ns + intent.hold_ms * MS else None
        if reason is not None:
            return Expected(fill_ns, exit_ns=t.ts_event_ns, exit_price=t.price, exit_reason=reason, touched=touched)
    return Expected(fill_ns, touched=touched)


def test_every_order_lives_exactly_as_a_brute_force_scan_of_the_real_tape_says() -> None:
    run = full_run()
    assert run.decisions == 18 and len(run.intents) == 18  # every 15 s over the 5.7 minutes, but the last minute
    assert {i.delta_bps for i in run.intents} == set(GRID.deltas_bps)
    kinds: dict[str, int] = {}
    for intent in run.intents:
        events = run.events(intent.client_order_id)
        assert events[0].status == "ACCEPTED" and events[0].event_id == f"{intent.client_order_id}:1"
        expected = brute_force(intent, events[0].ts_event_ns)
        if expected.fill_ns is None:
            assert [e.status for e in events] == ["ACCEPTED", "EXPIRED"]
            assert events[1].ts_event_ns == expected.expired_ns == events[0].ts_event_ns + intent.valid_for_ms * MS
            kinds["expired"] = kinds.get("expired", 0) + 1
            continue
        assert [e.status for e in events] == ["ACCEPTED", "FILLED"]
        assert (events[1].ts_event_ns, events[1].liquidity, events[1].last_fill_price) == \
               (expected.fill_ns, "MAKER", intent.price)
        exits = run.events(exit_order_id(intent.client_order_id))
        assert [(e.status, e.ts_event_ns, e.last_fill_price, e.reason, e.liquidity) for e in exits] == \
               [("FILLED", expected.exit_ns, expected.exit_price, expected.exit_reason, "TAKER")]
        kinds[str(expected.exit_reason)] = kinds.get(str(expected.exit_reason), 0) + 1
    # the tape reaches every way an order can end, and touches that did not fill
    assert set(kinds) == {"expired", "TAKE_PROFIT", "STOP_LOSS", "HOLD_ELAPSED"}, kinds
    touched = [i for i in run.intents if brute_force(i, run.events(i.client_order_id)[0].ts_event_ns).touched]
    assert touched, "no order was touched at its price: the touch rule would be untested"


def test_a_touch_alone_never_fills_on_the_real_tape() -> None:
    """Every fill is at a trade strictly through the limit; orders only touched at their price never fill there."""
    run, by_ts = full_run(), dict[int, list[Decimal]]()
    for t in trades():
        by_ts.setdefault(t.ts_event_ns, []).append(Decimal(t.price))
    fills = [e for e in run.out if isinstance(e, OrderEvent) and e.status == "FILLED" and e.liquidity == "MAKER"]
    assert fills
    for fill in fills:
        limit = Decimal(fill.price)
        beyond = [p for p in by_ts[fill.ts_event_ns] if (p < limit if fill.side == "BUY" else p > limit)]
        assert beyond, fill


def test_pnl_fees_and_equity_add_up() -> None:
    run = full_run()
    positions = run.positions()
    last = positions[-1]
    entries = {i.client_order_id: i for i in run.intents}
    exits = [e for e in run.out if isinstance(e, OrderEvent) and e.liquidity == "TAKER"]
    realised = 0.0
    for exit_event in exits:
        entry = next(i for i in run.intents if exit_order_id(i.client_order_id) == exit_event.client_order_id)
        sign = 1 if entry.side == "BUY" else -1
        realised += float(sign * (Decimal(exit_event.price) - Decimal(entry.price)) * Decimal(entry.size))
    fees = sum(float(e.fee) for e in run.out if isinstance(e, OrderEvent) and e.fee is not None)
    assert last.realised_pnl == pytest.approx(realised, abs=1e-9)
    assert last.fees_paid == pytest.approx(fees, abs=1e-9) and fees > 0
    assert last.funding_paid == 0.0  # the tape ends 0.4 s before Binance's 00:00 funding time
    assert last.equity - EQUITY == pytest.approx(last.realised_pnl - last.fees_paid - last.funding_paid
                                                 + last.unrealised_pnl, abs=1e-9)
    assert run.account.equity() == pytest.approx(last.equity, abs=1e-9)
    assert len(entries) == len(run.intents)


def test_outcomes_are_the_wick_orders_net_returns_and_teach_their_arms() -> None:
    run = full_run()
    closed = [o for o in run.outcomes if o.status == "CLOSED"]
    expired = [o for o in run.outcomes if o.status == "EXPIRED"]
    assert len(closed) + len(expired) == len(run.outcomes) == len(run.intents)
    for outcome in closed:
        intent = outcome.intent
        expected = brute_force(intent, run.events(intent.client_order_id)[0].ts_event_ns)
        entry, exit_ = float(intent.price), float(str(expected.exit_price))
        sign = 1 if intent.side == "BUY" else -1
        net = sign * (exit_ - entry) / entry - PAPER.fees.maker_rate - PAPER.fees.taker_rate * exit_ / entry
        assert outcome.net_return == pytest.approx(net, abs=1e-12)
    assert {o.net_return for o in expired} == {0.0}
    learned = {key: arm.n for key, arm in run.strategy.posteriors.arms.items()}
    assert sum(learned.values()) == len(run.outcomes)
    assert run.strategy.orders.live == {} and run.account.exposure[(VENUE, SYMBOL)].live_orders == 0


def test_marks_come_at_most_once_a_second_while_a_position_is_open() -> None:
    marks = [p for p in full_run().positions() if ":mark:" in p.event_id]
    assert len(marks) > 10
    assert all(b.ts_event_ns - a.ts_event_ns >= PAPER.mark_interval_ms * MS for a, b in pairwise(marks))
    assert all(p.size != "0" for p in marks)


def _outputs(run: Run) -> list[VenueRecord | OrderIntent]:
    return [*run.intents, *run.out]


def test_the_same_tape_gives_the_same_decisions_events_and_positions_after_restarts() -> None:
    """Live: state pickled and restored (as from a changelog) every 7,000 records; replay: one pass."""
    run = Run()
    for n, record in enumerate(tape()):
        if n % 7_000 == 6_999:
            run = pickle.loads(pickle.dumps(run))
        run.step(record)
    assert _outputs(run) == _outputs(full_run())
    assert run.strategy.posteriors.to_dict() == full_run().strategy.posteriors.to_dict()


def test_duplicate_trades_change_nothing_and_late_trades_are_skipped_and_counted() -> None:
    records = list(tape())
    doubled = [x for r in records for x in ((r, r) if isinstance(r, Trade) and r.event_id.endswith("7") else (r,))]
    run = Run()
    for record in doubled:
        run.step(record)
    assert _outputs(run) == _outputs(full_run())
    assert run.venue.symbol(VENUE, SYMBOL).counts["duplicate_trade"] == len(doubled) - len(records) > 1000

    moved = next(i for i, r in enumerate(records) if isinstance(r, Trade) and i > 50_000)
    later = next(i for i in range(moved + 1, len(records)) if isinstance(records[i], Trade)
                 and records[i].ts_event_ns > records[moved].ts_event_ns)
    shuffled = [*records[:moved], *records[moved + 1:later + 1], records[moved], *records[later + 1:]]
    without = [*records[:moved], *records[moved + 1:]]
    late, clean = Run(), Run()
    for record in shuffled:
        late.step(record)
    for record in without:
        clean.step(record)
    assert late.venue.symbol(VENUE, SYMBOL).counts["late_trade"] == 1
    assert _outputs(late) == _outputs(clean)


# -- placement, cancels and funding: hand-made (synthetic) paths ----------------------------------------------


def _top(ts_ns: int, bid: str = "100.0", ask: str = "100.1") -> TopOfBook:
    mid = (float(bid) + float(ask)) / 2
    return TopOfBook(venue=VENUE, symbol=SYMBOL, event_id=f"top:{ts_ns}", ts_event_ns=ts_ns, ts_exchange_ns=ts_ns,
                     ts_recv_ns=ts_ns, update_id=ts_ns, bid_price=bid, bid_size="1", ask_price=ask, ask_size="1",
                     mid=mid, microprice=mid)


def _trade(ts_ns: int, price: str) -> Trade:
    return Trade(venue=VENUE, symbol=SYMBOL, event_id=f"t{ts_ns}", ts_event_ns=ts_ns, ts_exchange_ns=ts_ns,
                 ts_recv_ns=ts_ns, taker_side="SELL", price=price, size="1")


def _intent(client_id: str, side: Side, price: str, ts_ns: int = 0, valid_for_ms: int = 10_000) -> OrderIntent:
    return OrderIntent(venue=VENUE, symbol=SYMBOL, client_order_id=client_id, ts_event_ns=ts_ns, ts_recv_ns=ts_ns,
                       mode="PAPER", side=side, price=price, size="2", post_only=True, reduce_only=False,
                       valid_for_ms=valid_for_ms, hold_ms=60_000, take_profit_price=None, stop_loss_price=None,
                       delta_bps=10.0, expected_net_return=0.001, fill_probability=0.5, model_version="m",
                       prediction_id="p")


def _events(records: list[VenueRecord]) -> list[OrderEvent]:
    assert all(isinstance(r, OrderEvent) for r in records), records
    return [r for r in records if isinstance(r, OrderEvent)]


def _venue() -> PaperVenue:
    venue = PaperVenue(PaperConfig(exit_rule=ExitRule(hold_ms=60_000, take_profit_bps=500, stop_loss_bps=500)),
                       PaperAccount(starting_equity=1_000.0))
    venue.on_record(_top(0))
    return venue


@pytest.mark.parametrize(("side", "price", "reason"), [
    ("BUY", "100.1", "post-only: buy at 100.1 would cross the ask 100.1"),
    ("SELL", "100.0", "post-only: sell at 100.0 would cross the bid 100.0"),
    ("BUY", "NaN", "invalid price NaN or size 2"),
])
def test_an_intent_that_would_cross_the_book_is_rejected(side: Side, price: str, reason: str) -> None:
    """Synthetic book: 100.0 / 100.1."""
    [event] = _events(_venue().submit(_intent("a", side, price)))
    assert (event.status, event.reason, event.event_id) == ("REJECTED", reason, "a:1")


def test_no_book_rejects_and_a_repeated_client_id_is_ignored() -> None:
    """Synthetic: a venue that has seen no top of book cannot check post-only."""
    venue = PaperVenue(PaperConfig(), PaperAccount(starting_equity=1_000.0))
    [event] = _events(venue.submit(_intent("a", "BUY", "99.0")))
    assert (event.status, event.reason) == ("REJECTED", "post-only: no top of book to check against")
    assert venue.submit(_intent("a", "BUY", "99.0")) == []
    assert venue.symbol(VENUE, SYMBOL).counts["duplicate_intent"] == 1


def test_cancel_all_cancels_resting_orders_and_leaves_positions_to_their_exits() -> None:
    """Synthetic path: one buy fills, one sell rests; the kill switch cancels only the sell."""
    venue = _venue()
    venue.submit(_intent("buy", "BUY", "99.0"))
    venue.submit(_intent("sell", "SELL", "101.0"))
    filled, position = venue.on_record(_trade(1 * S, "98.9"))
    assert isinstance(filled, OrderEvent) and isinstance(position, Position)
    assert (filled.status, position.size, position.entry_price, position.mark_price) == ("FILLED", "2", "99.0", "98.9")
    [cancelled] = _events(venue.cancel_all(VENUE, SYMBOL, 2 * S, 2 * S, "kill switch: operator"))
    assert (cancelled.client_order_id, cancelled.status, cancelled.reason, cancelled.event_id) == \
           ("sell", "CANCELLED", "kill switch: operator", "sell:2")
    exit_, closed = venue.on_record(_trade(62 * S, "99.5"))
    assert isinstance(exit_, OrderEvent) and isinstance(closed, Position)
    assert (exit_.client_order_id, exit_.reason, closed.size) == (exit_order_id("buy"), "HOLD_ELAPSED", "0")


def _funding_venue() -> tuple[PaperVenue, list[VenueRecord]]:
    """Synthetic path: a long and a short fill at 1 s, a third order fills after the funding time at 8 s."""
    venue, out = _venue(), []
    venue.on_record(Ticker(venue=VENUE, symbol=SYMBOL, event_id="tk1", ts_event_ns=0, ts_exchange_ns=0,
                           ts_recv_ns=0, funding_rate="0.0001", next_funding_time_ns=5 * S))
    for intent in (_intent("long", "BUY", "99.0"), _intent("short", "SELL", "101.0"),
                   _intent("late", "BUY", "97.0", ts_ns=0, valid_for_ms=20_000)):
        out += venue.submit(intent)
    out += venue.on_record(_trade(1 * S, "98.9"))
    out += venue.on_record(_trade(1 * S + 1, "101.1"))
    # the next ticker (after the funding time) arrives before any trade does: the 5 s funding is still charged
    venue.on_record(Ticker(venue=VENUE, symbol=SYMBOL, event_id="tk2", ts_event_ns=6 * S, ts_exchange_ns=6 * S,
                           ts_recv_ns=6 * S, funding_rate="0.0003", next_funding_time_ns=8 * 3600 * S))
    venue.on_record(FundingRate(venue=VENUE, symbol=SYMBOL, event_id="f", ts_event_ns=5 * S, ts_exchange_ns=0,
                                ts_recv_ns=0, funding_rate="0.0002"))  # a correction for a time still uncharged
    out += venue.on_record(_trade(7 * S, "100.0"))
    out += venue.on_record(_trade(8 * S, "96.9"))
    return venue, out


def test_funding_is_charged_once_per_funding_time_to_positions_open_then() -> None:
    venue, out = _funding_venue()
    funding = [r for r in out if isinstance(r, Position) and ":funding:" in r.event_id]
    assert [p.event_id for p in funding] == [f"{SYMBOL}:funding:{5 * S}"]
    # long 2 @ 99 pays 0.0002 of 198, short 2 @ 101 receives 0.0002 of 202; "late" filled after 5 s pays nothing
    assert funding[0].funding_paid == pytest.approx(0.0002 * 198 - 0.0002 * 202, abs=1e-12)
    state = venue.symbol(VENUE, SYMBOL)
    assert state.funded_until_ns == 5 * S and list(state.funding_schedule) == [8 * 3600 * S]
    late = state.orders["late"].wick
    assert late.state == "OPEN" and late.funding == 0.0
    venue.on_record(FundingRate(venue=VENUE, symbol=SYMBOL, event_id="old", ts_event_ns=4 * S, ts_exchange_ns=0,
                                ts_recv_ns=0, funding_rate="0.01"))
    assert state.counts["funding_already_charged"] == 1
    last = [r for r in out if isinstance(r, Position)][-1]
    assert last.equity - 1_000.0 == pytest.approx(last.realised_pnl - last.fees_paid - last.funding_paid
                                                  + last.unrealised_pnl, abs=1e-12)


def test_a_symbols_venue_state_survives_pickling() -> None:
    venue, _ = _funding_venue()
    state = venue.symbol(VENUE, SYMBOL)
    again: PaperSymbol = pickle.loads(pickle.dumps(state))
    assert again.orders.keys() == state.orders.keys() and again.funding_paid == state.funding_paid


# -- realism: latency and the queue model (docs/backtest.md, Realism) ------------------------------------------


def _realistic(**settings: Any) -> PaperVenue:
    """Synthetic book 100.0 / 100.1 at 0, the exits far away; `settings` of PaperConfig's realism."""
    venue = PaperVenue(PaperConfig(exit_rule=ExitRule(hold_ms=60_000, take_profit_bps=500, stop_loss_bps=500),
                                   **settings), PaperAccount(starting_equity=1_000.0))
    venue.on_record(_top(0))
    return venue


def _sized(ts_ns: int, price: str, size: str) -> Trade:
    return replace(_trade(ts_ns, price), size=size)


def _statuses(records: list[VenueRecord]) -> list[tuple[str, str, int]]:
    return [(r.client_order_id, r.status, r.ts_event_ns) for r in records if isinstance(r, OrderEvent)]


def test_an_order_exists_at_the_venue_only_after_its_entry_latency() -> None:
    """Synthetic path, 50 ms entry latency: a trade through the price before arrival cannot fill the order."""
    venue = _realistic(entry_latency=ConstantLatency(ms=50))
    assert venue.submit(_intent("buy", "BUY", "99.0", ts_ns=1 * S, valid_for_ms=1_000)) == []
    assert venue.on_record(_trade(1 * S + 20 * MS, "98.9")) == []  # in flight: nothing there to fill
    assert venue.on_record(_trade(1 * S + 50 * MS, "98.9")) == []  # at arrival it is not there yet either
    out = venue.on_record(_trade(1 * S + 60 * MS, "98.9"))
    assert _statuses(out) == [("buy", "ACCEPTED", 1 * S + 50 * MS), ("buy", "FILLED", 1 * S + 60 * MS)]
    late = _realistic(entry_latency=ConstantLatency(ms=50))
    late.submit(_intent("rests", "BUY", "99.0", ts_ns=1 * S, valid_for_ms=1_000))
    accepted = late.on_record(_trade(1 * S + 60 * MS, "99.5"))
    expired = late.on_record(_trade(3 * S, "99.5"))  # T counts from arrival at the venue
    assert _statuses(accepted + expired) == [("rests", "ACCEPTED", 1 * S + 50 * MS),
                                             ("rests", "EXPIRED", 2 * S + 50 * MS)]


def test_the_post_only_check_is_against_the_top_as_of_arrival() -> None:
    """Synthetic tops: the book moves between decision and arrival (rejected), or only after arrival (accepted)."""
    moved = _realistic(entry_latency=ConstantLatency(ms=50))
    moved.submit(_intent("a", "BUY", "100.05", ts_ns=1 * S))
    assert moved.on_record(_top(1 * S + 30 * MS, bid="99.9", ask="100.0")) == []
    [rejected] = _events(moved.on_record(_trade(1 * S + 70 * MS, "100.0")))
    assert (rejected.status, rejected.ts_event_ns, rejected.reason) == (
        "REJECTED", 1 * S + 50 * MS, "post-only: buy at 100.05 would cross the ask 100.0")
    later = _realistic(entry_latency=ConstantLatency(ms=50))
    later.submit(_intent("a", "BUY", "100.05", ts_ns=1 * S))
    [accepted] = _events(later.on_record(_top(1 * S + 70 * MS, bid="99.9", ask="100.0")))  # folded after it lands
    assert (accepted.status, accepted.ts_event_ns) == ("ACCEPTED", 1 * S + 50 * MS)


def test_a_cancel_takes_effect_after_its_latency_and_a_fill_in_between_stands() -> None:
    """Synthetic path, 100 ms cancel latency: two buys rest, a cancel-all is sent at 2 s."""
    venue = _realistic(cancel_latency=ConstantLatency(ms=100))
    venue.submit(_intent("near", "BUY", "99.0"))
    venue.submit(_intent("far", "BUY", "98.0"))
    assert venue.cancel_all(VENUE, SYMBOL, 2 * S, 2 * S, "kill switch: operator", cancel_id="c1") == []
    filled = venue.on_record(_trade(2 * S + 50 * MS, "98.9"))
    cancelled = venue.on_record(_trade(2 * S + 200 * MS, "97.9"))  # through "far", after the cancel's effect
    assert _statuses(filled + cancelled) == [("near", "FILLED", 2 * S + 50 * MS),
                                             ("far", "CANCELLED", 2 * S + 100 * MS)]


def test_a_cancel_reaches_only_the_orders_at_the_venue_before_it() -> None:
    """Synthetic path, 50 ms entry latency and immediate cancels."""
    venue = _realistic(entry_latency=ConstantLatency(ms=50))
    venue.submit(_intent("a", "BUY", "99.0", ts_ns=1 * S))
    assert venue.cancel_all(VENUE, SYMBOL, 1 * S + 20 * MS, 0, "risk", cancel_id="c1") == []  # before it lands
    assert _statuses(venue.on_record(_trade(1 * S + 60 * MS, "99.5"))) == [("a", "ACCEPTED", 1 * S + 50 * MS)]
    other = _realistic(entry_latency=ConstantLatency(ms=50))
    other.submit(_intent("a", "BUY", "99.0", ts_ns=1 * S))
    out = other.cancel_all(VENUE, SYMBOL, 1 * S + 70 * MS, 0, "risk", cancel_id="c1")  # it landed at 1.05 s
    assert _statuses(out) == [("a", "ACCEPTED", 1 * S + 50 * MS), ("a", "CANCELLED", 1 * S + 70 * MS)]


def test_latencies_are_drawn_per_client_order_id_the_same_every_time() -> None:
    """Synthetic intents through a lognormal entry latency: the same ids land at the same times in two venues."""
    def arrivals(seed: int) -> list[int]:
        venue = _realistic(entry_latency=LognormalLatency(median_ms=20, sigma=0.8), latency_seed=seed)
        for n in range(20):
            venue.submit(_intent(f"o{n}", "BUY", "99.0", ts_ns=1 * S))
        return [e.ts_event_ns for e in _events(venue.on_record(_top(9 * S)))]

    assert arrivals(0) == arrivals(0) == sorted(arrivals(0)) and len(set(arrivals(0))) == 20
    assert arrivals(0) != arrivals(1)
    assert arrivals(0) == sorted(1 * S + draw_ns(LognormalLatency(median_ms=20, sigma=0.8), 0, "entry", f"o{n}")
                                 for n in range(20))


def _book(ts_ns: int, bids: tuple[tuple[str, str], ...], kind: str = "SNAPSHOT") -> BookUpdate:
    return BookUpdate(venue=VENUE, symbol=SYMBOL, event_id=f"book:{ts_ns}", ts_event_ns=ts_ns, ts_exchange_ns=ts_ns,
                      ts_recv_ns=ts_ns, update_type=kind, depth=50, update_id=ts_ns, seq=None,  # type: ignore[arg-type]
                      bids=tuple(BookLevel(p, s) for p, s in bids),
                      asks=() if kind == "DELTA" else (BookLevel("100.1", "1"),))


BIDS = (("100.0", "1"), ("99.5", "4"), ("99.0", "3.0"), ("98.5", "6"))  # synthetic levels


@pytest.mark.parametrize("queue", [QueueModel(kind="risk_averse"), QueueModel(kind="log_prob")])
def test_trades_at_the_price_fill_once_the_recorded_queue_ahead_is_used_up(queue: QueueModel) -> None:
    """Synthetic book: 3.0 ahead at 99.0; trades at 99.0 of 1.0, 1.5 and 1.0 fill the buy on the third."""
    venue = _realistic(queue=queue)
    venue.on_record(_book(0, BIDS))
    venue.submit(_intent("buy", "BUY", "99.0"))
    assert venue.symbol(VENUE, SYMBOL).orders["buy"].queue == QueuePosition(3.0)
    out = [venue.on_record(_sized(n * S, "99.0", size)) for n, size in ((1, "1.0"), (2, "1.5"), (3, "1.0"))]
    assert [_statuses(o) for o in out] == [[], [], [("buy", "FILLED", 3 * S)]]
    fill = next(r for r in out[2] if isinstance(r, OrderEvent))
    assert (fill.last_fill_price, fill.filled_size, fill.liquidity) == ("99.0", "2", "MAKER")  # whole, as a maker
    strict = _realistic()  # the default: a touch is not a fill, whatever traded there
    strict.on_record(_book(0, BIDS))
    strict.submit(_intent("buy", "BUY", "99.0"))
    assert [strict.on_record(_sized(n * S, "99.0", "5")) for n in range(1, 4)] == [[], [], []]


def test_a_level_decrease_advances_the_queue_as_the_model_says() -> None:
    """Synthetic book: 99.0 goes 10 -> 6 with 3.0 ahead: log_prob leaves 3 - 0.4 x 4 = 1.4 ahead (risk_averse 3)."""
    for queue, ahead, fills_at in ((QueueModel(kind="log_prob"), 1.4, 2), (QueueModel(kind="risk_averse"), 3.0, 4)):
        venue = _realistic(queue=queue)
        venue.on_record(_book(0, (("100.0", "3.0"), ("99.0", "3.0"))))
        venue.submit(_intent("buy", "BUY", "99.0"))
        venue.on_record(_book(1, (("99.0", "10"),), "DELTA"))  # 7 joined behind
        venue.on_record(_book(2, (("99.0", "6"),), "DELTA"))
        assert venue.symbol(VENUE, SYMBOL).orders["buy"].queue.ahead == pytest.approx(ahead)  # type: ignore[union-attr]
        fills = [n for n in range(1, 6) if _statuses(venue.on_record(_sized(n * S, "99.0", "0.8")))]
        assert fills == [fills_at]  # 1.4 - 0.8 - 0.8 < 0; 3.0 needs four


def test_the_execute_step_reads_the_book_only_with_a_queue_model() -> None:
    assert "market.book" not in execute_step(EQUITY).inputs
    inputs = execute_step(EQUITY, PaperConfig(queue=QueueModel(kind="log_prob"))).inputs
    assert inputs[:4] == ("orders.intents", "orders.cancels", "market.trades", "market.book")
    venue = _realistic()  # without a queue model a book update changes nothing, as before
    venue.on_record(_book(0, BIDS))
    assert venue.symbol(VENUE, SYMBOL).book.book is None


def test_realistic_settings_change_the_config_hash_and_defaults_leave_it_as_it_was() -> None:
    span = HistoryRange(namespace="", from_ns=0, to_ns=1, symbols=("BTCUSDT",))
    default = BacktestConfig(span=span).config_hash()
    explicit = BacktestConfig(span=span, paper=PaperConfig(entry_latency=ConstantLatency(ms=0),
                                                           queue=QueueModel(kind="none"))).config_hash()
    assert explicit == default
    hashes = {BacktestConfig(span=span, paper=PaperConfig(**s)).config_hash() for s in (
        {"entry_latency": ConstantLatency(ms=5)}, {"cancel_latency": ConstantLatency(ms=5)}, {"latency_seed": 1},
        {"queue": QueueModel(kind="log_prob")}, {"queue": QueueModel(kind="power_prob", power=3)},
        {"entry_latency": RecordedLatency(samples_ms=(1.0, 2.0))})}
    assert len(hashes) == 6 and default not in hashes


@cache
def booked_tape() -> tuple[TimedRecord, ...]:
    """`tape()` with the real depth stream in its place (the queue model reads it)."""
    books = [r for r in capture_records(BINANCE_CAPTURE, VENUE) if isinstance(r, BookUpdate)]
    return tuple(sorted([*tape(), *books], key=lambda r: r.ts_event_ns))


REALISTIC = replace(PAPER, entry_latency=ConstantLatency(ms=5), cancel_latency=ConstantLatency(ms=5),
                    queue=QueueModel(kind="risk_averse"))


def _realistic_run(records: Iterable[TimedRecord]) -> Run:
    run = Run(venue=PaperVenue(REALISTIC, PaperAccount(starting_equity=EQUITY)))
    for record in records:
        run.step(record)
    return run


@cache
def realistic_run() -> Run:
    return _realistic_run(booked_tape())


def test_on_the_real_tape_orders_land_after_the_latency_and_some_fill_at_their_price() -> None:
    run = realistic_run()
    assert len(run.intents) == 18
    for intent in run.intents:
        events = run.events(intent.client_order_id)
        assert events[0].status == "ACCEPTED" and events[0].ts_event_ns == intent.ts_event_ns + 5 * MS
    fills = [e for e in run.out if isinstance(e, OrderEvent) and e.status == "FILLED" and e.liquidity == "MAKER"]
    by_ts: dict[int, list[Decimal]] = {}
    for t in trades():
        by_ts.setdefault(t.ts_event_ns, []).append(Decimal(t.price))
    at_price = [f for f in fills if Decimal(f.price) in by_ts[f.ts_event_ns] and not any(
        (p < Decimal(f.price) if f.side == "BUY" else p > Decimal(f.price)) for p in by_ts[f.ts_event_ns])]
    assert at_price, "no fill at the price on the real tape: the queue model would be untested on it"


def test_results_up_to_a_cut_of_the_real_tape_do_not_change() -> None:
    """No look-ahead: the venue fed the real tape up to a time in the middle makes exactly the first part of what it
    makes fed all of it, orders in flight and resting at the cut included."""
    full, records = realistic_run(), booked_tape()
    cut_ns = records[len(records) // 2].ts_event_ns
    cut = _realistic_run(r for r in records if r.ts_event_ns < cut_ns)
    assert cut.intents == full.intents[:len(cut.intents)] and len(full.intents) > len(cut.intents) > 0
    made, whole = cut.out, full.out
    assert made == whole[:len(made)] and len(whole) > len(made)
    assert any(isinstance(r, OrderEvent) and r.status == "FILLED" for r in made)
    assert any(isinstance(r, OrderEvent) for r in whole[len(made):])
    state = cut.venue.symbol(VENUE, SYMBOL)
    assert state.orders or state.in_flight, "nothing live at the cut: the test would not show what it says"


def test_a_venue_with_orders_in_flight_survives_pickling() -> None:
    records = booked_tape()
    run, n = Run(venue=PaperVenue(REALISTIC, PaperAccount(starting_equity=EQUITY))), 0
    for n, record in enumerate(records):  # noqa: B007  # the index where an order is in flight
        run.step(record)
        if run.venue.symbol(VENUE, SYMBOL).in_flight:
            break
    again = pickle.loads(pickle.dumps(run))
    for record in records[n + 1:]:
        again.step(record)
    assert _outputs(again) == _outputs(realistic_run())
