"""Depth frames through the compiled path against the Python path: the parser, then `BookBuilder.apply`.

Both feed one book implementation (core/src/book.rs), so what is compared is the compiled parse and
what the books do with it: every step's records byte for byte, gap, dropped, reason and topic, on every book
frame of both real captures and on hypothesis-mutated sequences of them (lost, repeated, swapped frames, shifted
ids, crossing and malformed levels). The books' own Avro bodies are compared with fastavro's encoding of the
Python records.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from schemas import load
from schemas.records import BookLevel, BookUpdate, TopOfBook
from streams.avro import SerdeError, encode_body
from streams.capture import read_capture
from streams.capture_replay import make_parser
from streams.ingest import CountingSink, Ingestor, decoded
from streams.orderbook import BookBuilder, BookStep, OrderBook
from streams.venue import FrameParser, ParseError

Frame = tuple[str, str, int, str]  # connection, venue, receive time, text
Outcome = tuple[Any, ...]


@cache
def _book_frames(path: Path, venue: str) -> tuple[Frame, ...]:
    """The real capture's order-book frames (and Binance's REST depth reply among them), in order."""
    return tuple((f.conn, f.venue, f.ts_recv_ns, f.data) for f in read_capture(path, default_venue=venue)
                 if f.kind == "recv" and ('"orderbook.' in f.data or "depth" in f.data or "lastUpdateId" in f.data))


CAPTURES = {"binance": (BINANCE_CAPTURE, "binance-usdm"), "bybit": (BYBIT_CAPTURE, "bybit-linear")}


def _step(step: BookStep, topic: str) -> Outcome:
    records = tuple((r.kind, r.schema, r.key, r.body, r.ts_exchange_ns) for r in step.records)
    return records, step.gap, step.dropped, step.reason, topic


class Feed:
    """One feed's parsers and books, like an Ingestor's; `compiled` tries the compiled path first."""

    def __init__(self, *, compiled: bool) -> None:
        self.compiled = compiled
        self.books = BookBuilder()
        self.parsers: dict[tuple[str, str], FrameParser] = {}
        self.taken = 0  # book frames the compiled path took
        self.keys: set[tuple[str, str, int]] = set()  # of the books the Python path applied updates to

    def step(self, frame: Frame) -> Outcome:
        conn, venue, ts_recv_ns, text = frame
        parser = self.parsers.setdefault((conn, venue), make_parser(venue))
        if self.compiled:
            hot = parser.encoded(text, ts_recv_ns, self.books.native)
            if isinstance(hot, BookStep):
                self.taken += 1
                return _step(hot, hot.topic)
            if hot is not None:
                return ("record", hot.kind)
        try:
            parsed = parser.parse(text, ts_recv_ns)
        except ParseError as exc:
            return ("parse error", str(exc))
        updates = [r for r in parsed.records if isinstance(r, BookUpdate)]
        if not updates:
            return ("record", parsed.kind)
        try:
            step = self.books.apply(updates[0])
        except SerdeError as exc:
            return ("serde error", str(exc))
        self.keys.add((updates[0].venue, updates[0].symbol, updates[0].depth))
        return _step(step, parsed.topic)

    def state(self, keys: set[tuple[str, str, int]]) -> dict[tuple[str, str, int], Any]:
        books = {key: self.books.book(*key) for key in keys}
        return {key: book and (book.update_id, book.fresh, book.top(10_000)) for key, book in books.items()}


def _both(frames: list[Frame]) -> tuple[Feed, Feed]:
    """The same frames through both paths: equal at every step, and equal books at the end."""
    compiled, python = Feed(compiled=True), Feed(compiled=False)
    for i, frame in enumerate(frames):
        assert compiled.step(frame) == python.step(frame), (i, frame[3][:300])
    assert compiled.state(python.keys) == python.state(python.keys)
    return compiled, python


@pytest.mark.parametrize(("capture", "book_frames"), [("binance", 6551), ("bybit", 2148)])
def test_every_book_frame_of_the_real_captures_gives_the_python_step(capture: str, book_frames: int) -> None:
    compiled, _ = _both(list(_book_frames(*CAPTURES[capture])))
    assert compiled.taken == book_frames  # every one: only Binance's REST depth reply is left to Python


def test_book_records_are_fastavros_encoding_of_the_python_records() -> None:
    """The update as parsed, its top of book as the Python definition makes it, a RESYNC marker as `replace`."""
    parser = make_parser("bybit-linear")
    updates = [r for f in _book_frames(*CAPTURES["bybit"]) for r in parser.parse(f[3], f[2]).records
               if isinstance(r, BookUpdate) and r.symbol == "BTCUSDT" and r.venue == "bybit-linear"]
    books = BookBuilder()
    for update in updates[:200]:
        update_item, top_item = books.apply(update).records
        assert update_item.body == encode_body(load(BookUpdate.SCHEMA), update.to_avro())
        top = decoded(top_item)
        assert isinstance(top, TopOfBook) and top.event_id == update.event_id
        bid, ask, bid_sz, ask_sz = (float(x) for x in (top.bid_price, top.ask_price, top.bid_size, top.ask_size))
        assert (top.mid, top.microprice) == ((bid + ask) / 2, (bid * ask_sz + ask * bid_sz) / (bid_sz + ask_sz))
        assert top_item.body == encode_body(load(TopOfBook.SCHEMA), top.to_avro())
    lost = updates[201]  # 200 is lost
    (marker,) = books.apply(lost).records
    expected = replace(lost, update_type="RESYNC", event_id=f"{lost.event_id}:resync", bids=(), asks=(),
                       prev_update_id=updates[199].update_id)
    assert marker.body == encode_body(load(BookUpdate.SCHEMA), expected.to_avro())


@pytest.mark.parametrize(("capture", "topic"), [("binance", "btcusdt@depth@0ms"), ("bybit", "orderbook.200.BTCUSDT")])
def test_a_gap_on_the_compiled_path_asks_for_a_snapshot(capture: str, topic: str) -> None:
    path, venue = CAPTURES[capture]  # one venue: Bybit's spot connection has a book of the same name
    frames = [f for f in _book_frames(path, venue) if f[1] == venue and (topic in f[3] or "lastUpdateId" in f[3])][:40]
    sink = CountingSink()
    ingestor, parser = Ingestor(sink), make_parser(venue)
    outcomes = [ingestor.on_frame(parser, f[3], f[2], "test") for f in frames[:30] + frames[31:]]
    assert [o.resync_topic for o in outcomes if o.resync_topic] == [topic]
    assert (ingestor.stats.gaps, ingestor.stats.errors, ingestor.stats.frames["book"]) == (1, 0, 39)
    updates = [r.update_type for r in sink.records if isinstance(r, BookUpdate)]
    assert updates[-1] == "RESYNC" and updates.count("RESYNC") == 1  # and nothing after it: no snapshot came


# -- mutated sequences ------------------------------------------------------------------------------------------

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=6),
    st.from_regex(r"-?[0-9]{0,3}\.?[0-9]{0,3}", fullmatch=True), st.just([]), st.just({}), st.just([["1", "2"]]),
)
_LEVELS = st.one_of(
    st.tuples(st.from_regex(r"-?[0-9]{1,5}(\.[0-9]{0,2})?", fullmatch=True), st.sampled_from(["0", "0.000", "1.5"])),
    st.sampled_from([("99999.9", "1"), ("1", "1"), ("-0", "1"), ("61800.1", "-1.5"), ("1e3", "1"), (1, "1")]),
).map(list)


def _target(frame: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    data = frame.get("data")
    return data if isinstance(data, dict) and draw(st.booleans()) else frame


@st.composite
def _mutated(draw: st.DrawFn, frames: tuple[Frame, ...]) -> list[Frame]:
    """A prefix of the real book frames (snapshots and bridging are early) with a few things gone wrong."""
    out = list(frames[: draw(st.integers(2, 60))])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(out) - 1))
        conn, venue, ts, text = out[i]
        how = draw(st.sampled_from(["lose", "repeat", "swap", "field", "id", "level", "bare"]))
        if how == "lose" and len(out) > 1:
            del out[i]
            continue
        if how == "repeat":
            out.insert(i, out[i])
            continue
        if how == "swap" and i + 1 < len(out):
            out[i], out[i + 1] = out[i + 1], out[i]
            continue
        frame = json.loads(text)
        target = _target(frame, draw)
        if how == "field" and target:
            key = draw(st.sampled_from(sorted(target)))
            if draw(st.booleans()):
                del target[key]
            else:
                target[key] = draw(_VALUES)
        elif how == "id":
            key = draw(st.sampled_from([k for k in ("u", "pu", "lastUpdateId") if isinstance(target.get(k), int)] or
                                       ["u"]))
            target[key] = target.get(key, 0) + draw(st.integers(-2, 2)) if isinstance(target.get(key), int) else 7
        elif how == "level":
            side = draw(st.sampled_from(["b", "a", "bids", "asks"]))
            if isinstance(target.get(side), list):
                target[side].insert(draw(st.integers(0, len(target[side]))), draw(_LEVELS))
        elif how == "bare" and isinstance(frame.get("data"), dict):
            frame = frame["data"]
        out[i] = (conn, venue, ts, json.dumps(frame, ensure_ascii=draw(st.booleans())))
    return out


@pytest.mark.parametrize("capture", ["binance", "bybit"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_book_sequences_give_the_python_steps(capture: str, data: st.DataObject) -> None:
    _both(data.draw(_mutated(_book_frames(*CAPTURES[capture]))))


# -- the books' encoding of any BookUpdate -----------------------------------------------------------------------

_LONG = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(), st.booleans())
_TEXT = st.one_of(st.text(max_size=6), st.just("\ud800"))
_DECIMAL = st.from_regex(r"-?(?:[0-9]{1,6}(?:\.[0-9]{0,4})?|\.[0-9]{1,4})", fullmatch=True)
_SIDE = st.lists(st.builds(BookLevel, _DECIMAL, _DECIMAL), max_size=4).map(tuple)
_SNAPSHOTS = st.builds(
    BookUpdate, venue=_TEXT, symbol=_TEXT, event_id=_TEXT, ts_event_ns=_LONG, ts_exchange_ns=_LONG, ts_recv_ns=_LONG,
    update_type=st.just("SNAPSHOT"), depth=_LONG, update_id=_LONG, seq=st.one_of(st.none(), _LONG), bids=_SIDE,
    asks=_SIDE, prev_update_id=st.one_of(st.none(), _LONG),
)


@settings(max_examples=500, deadline=None)
@given(_SNAPSHOTS)
def test_a_snapshot_is_published_as_fastavro_encodes_it_or_refused_as_fastavro_refuses_it(update: BookUpdate) -> None:
    try:
        expected: bytes | None = encode_body(load(BookUpdate.SCHEMA), update.to_avro())
    except SerdeError:
        expected = None
    try:
        step = BookBuilder().apply(update)
    except SerdeError:
        assert expected is None
        return
    assert step.records[0].body == expected
    for top in step.records[1:]:
        assert top.body == encode_body(load(TopOfBook.SCHEMA), decoded(top).to_avro())


@pytest.mark.parametrize(("field", "value"), [("seq", "7"), ("update_id", 2**64), ("bids", (BookLevel("1e5", "1"),)),
                                              ("symbol", None), ("update_type", "FULL")])
def test_an_update_the_schema_refuses_leaves_the_books_as_they_were(field: str, value: Any) -> None:
    update = BookUpdate(venue="v", symbol="S", event_id="S:1", ts_event_ns=1, ts_exchange_ns=1, ts_recv_ns=1,
                        update_type="SNAPSHOT", depth=50, update_id=1, seq=None, bids=(BookLevel("1", "1"),), asks=())
    books = BookBuilder()
    with pytest.raises(SerdeError, match=rf"^cannot encode liqbot.BookUpdate: field {field}: "):
        books.apply(replace(update, **{field: value}))
    assert books.book("v", "S", 50) is None


# -- the book that feature code folds records into ----------------------------------------------------------------

def test_order_book_reads_like_a_mapping_and_survives_pickling() -> None:
    import pickle  # noqa: PLC0415 (this test only)

    levels = [BookLevel(f"{100 + i * 37 % 50}.5", f"{i % 4}") for i in range(60)]  # repeated prices, zero sizes
    snapshot = BookUpdate(venue="v", symbol="S", event_id="e", ts_event_ns=1, ts_exchange_ns=1, ts_recv_ns=1,
                          update_type="SNAPSHOT", depth=50, update_id=9, seq=None, bids=tuple(levels[:30]),
                          asks=tuple(BookLevel(f"2{lv.price}", lv.size) for lv in levels[30:]))
    book = OrderBook()
    book.reset(snapshot)
    bids = {float(lv.price): lv for lv in snapshot.bids if float(lv.size)}  # the old dict definition
    assert dict(book.bids) == bids and list(book.bids) == sorted(bids, reverse=True)
    assert book.bids[max(bids)] == bids[max(bids)] and 0.5 not in book.bids and len(book.asks) > 0
    restored = pickle.loads(pickle.dumps(book))
    assert (restored.update_id, restored.fresh, restored.top(100)) == (9, True, book.top(100))
    assert book.best() == (bids[max(bids)], book.asks[min(book.asks)])


def test_a_book_frame_its_schema_refuses_is_dead_lettered_and_the_book_left_alone() -> None:
    snapshot, delta = (f[3] for f in _book_frames(*CAPTURES["bybit"])[:2])
    refused = json.loads(snapshot)
    refused["data"]["seq"] = "7"  # the Python parser passes it on; the schema's ["null", "long"] does not take it
    ingestor = Ingestor(CountingSink())
    parser = make_parser("bybit-linear")
    assert ingestor.on_frame(parser, json.dumps(refused), 1, "test").kind == "error"
    assert ingestor.on_frame(parser, delta, 2, "test").records == 0  # no book: the delta waits for a snapshot
    assert (ingestor.stats.errors, ingestor.stats.dropped_deltas, ingestor.stats.internal_errors) == (1, 1, 0)
    assert ingestor.stats.error_samples[0].startswith("test: cannot encode liqbot.BookUpdate: field seq: ")
