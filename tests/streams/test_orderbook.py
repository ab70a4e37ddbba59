"""Books rebuilt from the real capture agree with an independent rebuild at every step; gaps are never crossed."""

from __future__ import annotations

import bisect
import zlib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from liqbot.data import BINANCE_CAPTURE
from schemas.records import AvroRecord, BookLevel, BookUpdate, TopOfBook
from streams.bybit.parse import BybitPublicParser
from streams.capture import read_capture
from streams.capture_replay import replay_captures
from streams.ingest import CountingSink, Ingestor, decoded
from streams.orderbook import BookBuilder, BookStep


@pytest.fixture(scope="module")
def book_updates(bybit_capture: Path) -> list[BookUpdate]:
    parsers: dict[str, BybitPublicParser] = {}
    updates = []
    for frame in read_capture(bybit_capture):
        if frame.kind == "recv" and '"orderbook.' in frame.data:
            parser = parsers.setdefault(frame.conn, BybitPublicParser(frame.venue))
            updates += [r for r in parser.parse(frame.data, frame.ts_recv_ns).records if isinstance(r, BookUpdate)]
    return updates


class IndependentBook:
    """The test's own rebuild: Decimal prices, written from Bybit's documented rules, sharing no code."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, str]] = {"b": {}, "a": {}}

    def feed(self, update: BookUpdate) -> None:
        if update.update_type == "SNAPSHOT":
            self.sides = {"b": {}, "a": {}}
        for name, levels in (("b", update.bids), ("a", update.asks)):
            for level in levels:
                if Decimal(level.size) == 0:
                    self.sides[name].pop(Decimal(level.price), None)
                else:
                    self.sides[name][Decimal(level.price)] = level.size

    def top(self, side: str, n: int) -> list[tuple[Decimal, str]]:
        return sorted(self.sides[side].items(), reverse=side == "b")[:n]

    def checksum(self, n: int = 25) -> int:
        # the book keeps the venue's price text; reproduce it from the Decimal key of each level
        text = "|".join(f"{_text(p)}:{s}" for p, s in (*self.top("b", n), *self.top("a", n)))
        return zlib.crc32(text.encode())


def _text(price: Decimal) -> str:
    return str(price)


def records(step: BookStep) -> list[AvroRecord]:
    return [decoded(item) for item in step.records]


def test_rebuild_matches_an_independent_application_at_every_step(book_updates: list[BookUpdate]) -> None:
    builder = BookBuilder()
    independent: dict[tuple[str, str], IndependentBook] = {}
    steps = 0
    for update in book_updates:
        step = builder.apply(update)
        assert not step.gap and not step.dropped
        mine = independent.setdefault((update.venue, update.symbol), IndependentBook())
        mine.feed(update)
        top = next(r for r in records(step) if isinstance(r, TopOfBook))
        (best_bid, bid_size), (best_ask, ask_size) = mine.top("b", 1)[0], mine.top("a", 1)[0]
        assert (Decimal(top.bid_price), top.bid_size, Decimal(top.ask_price), top.ask_size) == (
            best_bid, bid_size, best_ask, ask_size)
        assert top.mid == pytest.approx(float((best_bid + best_ask) / 2), rel=1e-15)
        book = builder.book(update.venue, update.symbol, update.depth)
        assert book is not None and book.checksum() == mine.checksum()
        steps += 1
    assert steps == 2148


def test_microprice_leans_to_the_thin_side(book_updates: list[BookUpdate]) -> None:
    step = BookBuilder().apply(book_updates[0])
    top = records(step)[1]
    assert isinstance(top, TopOfBook)
    bid, ask, bid_sz, ask_sz = (float(x) for x in (top.bid_price, top.ask_price, top.bid_size, top.ask_size))
    assert top.microprice == (bid * ask_sz + ask * bid_sz) / (bid_sz + ask_sz)
    assert bid < top.microprice < ask


def test_gap_emits_a_resync_marker_and_publishes_nothing_until_a_snapshot(book_updates: list[BookUpdate]) -> None:
    btc = [u for u in book_updates if u.venue == "bybit-linear" and u.symbol == "BTCUSDT"]
    builder = BookBuilder()
    assert len(builder.apply(btc[0]).records) == 2 and len(builder.apply(btc[1]).records) == 2
    step = builder.apply(btc[3])  # btc[2] lost
    assert step.gap and step.reason == (f"update {btc[3].update_id} follows {btc[3].update_id - 1}, "
                                        f"book is at {btc[1].update_id}")
    (marker,) = records(step)
    assert isinstance(marker, BookUpdate)
    assert (marker.update_type, marker.bids, marker.asks, marker.prev_update_id) == ("RESYNC", (), (),
                                                                                      btc[1].update_id)
    for later in btc[4:10]:
        dropped = builder.apply(later)
        assert dropped.records == () and dropped.dropped
    snapshot = replace(btc[0], update_id=btc[10].update_id - 1)  # a fresh snapshot (synthetic id) heals the book
    assert len(builder.apply(snapshot).records) == 2
    assert len(builder.apply(btc[10]).records) == 2


def test_delta_before_any_snapshot_is_dropped(book_updates: list[BookUpdate]) -> None:
    step = BookBuilder().apply(book_updates[1])
    assert step.dropped and step.records == () and step.reason == "delta before any snapshot (held for the snapshot)"


def test_crossed_book_is_treated_as_a_gap(book_updates: list[BookUpdate]) -> None:
    snapshot, delta = book_updates[0], book_updates[1]
    builder = BookBuilder()
    builder.apply(snapshot)
    best_ask = min(float(lv.price) for lv in snapshot.asks)
    crossing = replace(delta, bids=(BookLevel(f"{best_ask + 100:.2f}", "1.000"),), asks=())
    step = builder.apply(crossing)
    assert step.gap and step.reason.startswith("crossed book: bid ")
    assert [r.update_type for r in records(step) if isinstance(r, BookUpdate)] == ["RESYNC"]


def test_explicit_previous_id_is_checked_instead_of_plus_one(book_updates: list[BookUpdate]) -> None:
    """Binance-style ids (synthetic ids on real levels): continuity is `prev_update_id == last update_id`."""
    builder = BookBuilder()
    builder.apply(replace(book_updates[0], update_id=100))
    ok = builder.apply(replace(book_updates[1], update_id=250, prev_update_id=100))
    assert not ok.gap and len(ok.records) == 2
    broken = builder.apply(replace(book_updates[2], update_id=400, prev_update_id=300))
    assert broken.gap and broken.reason == "update 400 follows 300, book is at 250"


def test_binance_book_from_snapshot_and_diffs_agrees_with_binance_book_ticker() -> None:
    """Real Binance capture: the REST snapshot (arriving after the bridging delta) plus 6.5k diffs give, at
    every step, the best bid/ask that Binance's own bookTicker stream reported for that update id or just before."""
    sink = CountingSink()
    stats = replay_captures([BINANCE_CAPTURE], Ingestor(sink), venue="binance-usdm", say=lambda _: None)
    assert stats.gaps == 0 and stats.errors == 0
    tickers = {r.update_id: r for r in sink.records if isinstance(r, TopOfBook) and ":bt:" in r.event_id}
    from_depth = [r for r in sink.records if isinstance(r, TopOfBook) and ":bt:" not in r.event_id]
    ids = sorted(tickers)
    assert len(from_depth) == 6548
    for top in from_depth:
        ticker = tickers[ids[bisect.bisect_right(ids, top.update_id) - 1]]
        assert (top.bid_price, top.ask_price) == (ticker.bid_price, ticker.ask_price), top.update_id
