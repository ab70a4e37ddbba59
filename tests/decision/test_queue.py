"""Queue models of the paper venue against figures computed by hand (hand-made, synthetic sizes), the queue ahead
at placement on synthetic books, and on the real Binance BTCUSDT book against a plain rebuild of it."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest

from decision.queue import UNKNOWN, QueueModel, QueuePosition, VenueBook, parse_queue, queue_ahead
from liqbot.data import BINANCE_CAPTURE
from schemas.records import BookLevel, BookUpdate, TopOfBook
from streams.capture_replay import capture_records

LOG, RISK, POWER2 = QueueModel(kind="log_prob"), QueueModel(kind="risk_averse"), QueueModel(kind="power_prob")


def test_trades_at_the_price_use_up_the_queue_and_the_one_past_it_fills() -> None:
    queue = QueuePosition(3.0)
    assert [queue.on_trade(size) for size in (1.0, 1.5, 1.0)] == [False, False, True]
    assert queue.ahead == pytest.approx(-0.5)
    exact = QueuePosition(3.0)
    assert [exact.on_trade(size) for size in (1.0, 2.0, 0.001)] == [False, False, True]  # 0 left: the next one


@pytest.mark.parametrize(("model", "expected"), [
    # front 3, back 7, the level 10 -> 6 (a decrease of 4, no trade): p = f(7) / (f(7) + f(3)) from behind
    (LOG, 3 - (1 - 3 / 5) * 4),  # log(8) / (log(8) + log(4)) = 3 / 5
    (POWER2, 3 - (1 - 49 / 58) * 4),  # 7^2 / (7^2 + 3^2)
    (QueueModel(kind="power_prob", power=1.0), 3 - (1 - 7 / 10) * 4),
    (RISK, 3.0),  # min(3, 6): only a level below the queue moves it
])
def test_a_level_decrease_advances_the_queue_as_the_model_says(model: QueueModel, expected: float) -> None:
    queue = QueuePosition(3.0)
    queue.on_level(model, 10.0, 6.0)
    assert queue.ahead == pytest.approx(expected, abs=1e-12)
    assert math.isclose(LOG.behind(3.0, 7.0), 0.6) and math.isclose(POWER2.behind(3.0, 7.0), 49 / 58)


def test_trades_at_the_price_are_not_counted_again_in_the_next_level_change() -> None:
    queue = QueuePosition(3.0)
    queue.on_trade(1.0)  # ahead 2, the level will show it too
    queue.on_level(LOG, 10.0, 6.0)  # 4 less, 1 of it the trade: 3 cancelled; back 8, p = log 9 / (log 9 + log 3)
    assert queue.ahead == pytest.approx(2 - (1 - 2 / 3) * 3, abs=1e-12) and queue.traded == 0.0


def test_an_increase_joins_behind_and_a_level_below_the_queue_caps_it() -> None:
    for model in (LOG, POWER2, RISK):
        queue = QueuePosition(3.0)
        queue.on_level(model, 10.0, 14.0)
        assert queue.ahead == 3.0
    capped = QueuePosition(3.0)
    capped.on_level(RISK, 10.0, 2.0)
    assert capped.ahead == 2.0
    # 9 of 10 cancelled: 40 % of it (3.6) comes off the front of 3, the order is first, and any trade fills it
    queue = QueuePosition(3.0)
    queue.on_level(LOG, 10.0, 1.0)
    assert queue.ahead == pytest.approx(3 - 0.4 * 9, abs=1e-12) and queue.on_trade(0.001)
    # with power 4, 97 % of 8.5 is from behind, more than the back's 7: the excess comes off the front too, and
    # what is left of the level is all ahead
    p = 7**4 / (7**4 + 3**4)
    deep = QueuePosition(3.0)
    deep.on_level(QueueModel(kind="power_prob", power=4.0), 10.0, 1.5)
    assert p * 8.5 > 7 and deep.ahead == pytest.approx(3 - (1 - p) * 8.5 + (7 - p * 8.5), abs=1e-12) \
        == pytest.approx(1.5, abs=1e-12)


def test_an_order_deeper_than_the_book_waits_until_its_level_shows() -> None:
    queue = QueuePosition(UNKNOWN)
    assert queue.on_trade(5.0) is False  # a trade at the price cannot reach an unknown queue
    queue.on_level(LOG, None, 0.0)  # a removal says nothing about it
    assert queue.ahead == UNKNOWN
    queue.on_level(LOG, 0.0, 4.0)
    assert queue.ahead == 4.0  # all of the level as first seen is ahead


def _update(kind: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], depth: int = 25,
            ts_ns: int = 0) -> BookUpdate:
    return BookUpdate(venue="v", symbol="S", event_id=f"b{ts_ns}", ts_event_ns=ts_ns, ts_exchange_ns=ts_ns,
                      ts_recv_ns=ts_ns, update_type=kind, depth=depth, update_id=ts_ns, seq=None,  # type: ignore[arg-type]
                      bids=tuple(BookLevel(p, s) for p, s in bids), asks=tuple(BookLevel(p, s) for p, s in asks))


def _top(bid: str, bid_size: str, ask: str, ask_size: str) -> TopOfBook:
    return TopOfBook(venue="v", symbol="S", event_id="t", ts_event_ns=0, ts_exchange_ns=0, ts_recv_ns=0, update_id=0,
                     bid_price=bid, bid_size=bid_size, ask_price=ask, ask_size=ask_size, mid=0.0, microprice=0.0)


def test_the_queue_ahead_at_placement() -> None:
    """Synthetic book: bids 100.0 x 5, 99.8 x 7, 99.5 x 2; asks 100.2 x 4."""
    book = VenueBook()
    book.fold(_update("SNAPSHOT", [("100.0", "5"), ("99.8", "7"), ("99.5", "2")], [("100.2", "4")]))
    top = _top("100.0", "6", "100.2", "4")
    assert queue_ahead("BUY", 100.1, top, book) == 0.0  # inside the spread: nothing rests there
    assert queue_ahead("BUY", 100.0, top, book) == 6.0  # at the best: the top of book's size
    assert queue_ahead("BUY", 99.8, top, book) == 7.0
    assert queue_ahead("BUY", 99.9, top, book) == 0.0  # inside the depth, no level there
    assert queue_ahead("BUY", 99.4, top, book) == UNKNOWN  # beyond the deepest level recorded
    assert queue_ahead("SELL", 100.3, top, book) == UNKNOWN and queue_ahead("SELL", 100.2, top, book) == 4.0
    book.fold(_update("DELTA", [("99.8", "0"), ("99.4", "3")], [], depth=50))  # another depth's: left out
    assert book.size_at("BUY", 99.8) == 7.0
    book.fold(_update("DELTA", [("99.8", "0"), ("99.4", "3")], []))
    assert (book.size_at("BUY", 99.8), book.size_at("BUY", 99.4)) == (0.0, 3.0)
    book.fold(_update("RESYNC", [], []))
    assert book.size_at("BUY", 99.4) is None and queue_ahead("BUY", 99.4, top, book) == UNKNOWN


def test_the_queue_ahead_on_the_real_binance_book_is_the_recorded_level() -> None:
    """The real BTCUSDT depth stream folded into the venue's book, checked against a plain dict rebuild of it at
    every hundredth update, at the best bid and 1, 5 and 50 ticks below it."""
    book, plain, checked = VenueBook(), dict[Decimal, Decimal](), 0
    updates = [r for r in capture_records(BINANCE_CAPTURE, "binance-usdm") if isinstance(r, BookUpdate)]
    for n, update in enumerate(updates):
        book.fold(update)
        if update.update_type == "SNAPSHOT":
            plain = {}
        for level in update.bids:
            plain[Decimal(level.price)] = Decimal(level.size)
        plain = {p: s for p, s in plain.items() if s != 0}
        if n % 100 or update.update_type == "SNAPSHOT":
            continue
        best = max(plain)
        for ticks in (0, 1, 5, 50):
            price = best - Decimal("0.1") * ticks
            size = book.size_at("BUY", float(price))
            assert size == float(plain.get(price, 0)), (n, price)
            assert queue_ahead("BUY", float(price), None, book) == (UNKNOWN if price < min(plain) else size)
            checked += 1
    assert checked > 200 and len(updates) > 6_000


@pytest.mark.parametrize(("text", "model"), [
    ("none", QueueModel()), ("risk_averse", RISK), ("log_prob", LOG), ("power_prob:3", QueueModel(kind="power_prob",
                                                                                                  power=3.0)),
])
def test_queue_models_as_written_on_the_command_line(text: str, model: QueueModel) -> None:
    assert parse_queue(text) == model
    assert model.on == (text != "none")


@pytest.mark.parametrize(("text", "message"), [
    ("fifo", "queue model 'fifo' is not one of none, risk_averse, log_prob or power_prob:N (N > 0, e.g. "
             "power_prob:2)"),
    ("log_prob:2", "queue model 'log_prob:2' is not one of none"),
    ("power_prob", "queue model 'power_prob': power_prob needs its N, one of none"),
    ("power_prob:-1", "queue model 'power_prob:-1': power_prob needs its N, one of none"),
])
def test_a_bad_queue_model_says_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_queue(text)
