"""Binance USD-M frames to the same typed records as Bybit's, on the real capture; bad frames raise named errors."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass

import pytest

from liqbot.data import BINANCE_CAPTURE
from schemas import load
from schemas.records import AvroRecord, BookLevel, BookUpdate, Liquidation, TopOfBook, Trade
from streams.avro import decode_body, encode_body
from streams.binance.parse import BinanceUsdmParser, parse_depth_snapshot
from streams.capture import read_capture
from streams.venue import FrameParser, Parsed, ParseError


@dataclass(frozen=True)
class Line:
    line_no: int
    text: str
    parsed: Parsed


@pytest.fixture(scope="module")
def capture() -> list[Line]:
    """Every line of the real capture through one parser, as one live connection would see it."""
    parser = BinanceUsdmParser()
    return [Line(f.line_no, f.data, parser.parse(f.data, f.ts_recv_ns))
            for f in read_capture(BINANCE_CAPTURE, default_venue="binance-usdm")]


@pytest.fixture(scope="module")
def records(capture: list[Line]) -> list[AvroRecord]:
    return [r for line in capture for r in line.parsed.records]


def _first(records: list[AvroRecord], cls: type[AvroRecord]) -> AvroRecord:
    return next(r for r in records if isinstance(r, cls))


def test_parser_is_a_frame_parser() -> None:
    parser: FrameParser = BinanceUsdmParser()
    assert parser.venue == "binance-usdm"


def test_whole_capture_parses_with_exact_counts(capture: list[Line], records: list[AvroRecord]) -> None:
    assert len(capture) == 93_954
    assert Counter(line.parsed.kind for line in capture) == Counter(top_of_book=66_089, trade=21_313, book=6_552)
    assert Counter((type(r).__name__, getattr(r, "update_type", "")) for r in records) == Counter({
        ("TopOfBook", ""): 66_089, ("Trade", ""): 21_313, ("BookUpdate", "DELTA"): 6_551,
        ("BookUpdate", "SNAPSHOT"): 1,
    })
    assert {(r.venue, r.symbol) for r in records if isinstance(r, Trade | BookUpdate | TopOfBook)} == {
        ("binance-usdm", "BTCUSDT")}


def test_trade_time_never_after_message_time(records: list[AvroRecord]) -> None:
    trades = [r for r in records if isinstance(r, Trade)]
    assert all(t.ts_event_ns <= t.ts_exchange_ns for t in trades)
    assert Counter(t.taker_side for t in trades) == Counter(BUY=9_616, SELL=11_697)  # raw: 11,697 m=true


def test_first_trade_exact(records: list[AvroRecord]) -> None:
    assert _first(records, Trade) == Trade(
        venue="binance-usdm", symbol="BTCUSDT", event_id="5266583935", ts_event_ns=1723161256322_000000,
        ts_exchange_ns=1723161256322_000000, ts_recv_ns=1723161255088176367, taker_side="BUY",
        price="61800.30", size="0.006", tick_direction=None, block_trade=False, rpi=None, seq=None,
    )


def test_first_book_ticker_exact(records: list[AvroRecord]) -> None:
    top = _first(records, TopOfBook)
    assert top == TopOfBook(
        venue="binance-usdm", symbol="BTCUSDT", event_id="BTCUSDT:bt:5123107839020",
        ts_event_ns=1723161256313_000000, ts_exchange_ns=1723161256313_000000, ts_recv_ns=1723161255088169167,
        update_id=5123107839020, bid_price="61800.20", bid_size="2.507", ask_price="61800.30", ask_size="2.510",
        mid=61800.25, microprice=61800.24997010166,
    )
    assert top.microprice == (61800.20 * 2.510 + 61800.30 * 2.507) / (2.507 + 2.510)


def test_first_depth_update_exact(records: list[AvroRecord]) -> None:
    book = _first(records, BookUpdate)
    assert isinstance(book, BookUpdate)
    assert (book.venue, book.symbol, book.event_id, book.update_type, book.depth) == (
        "binance-usdm", "BTCUSDT", "BTCUSDT:1000:5123107837557", "DELTA", 1000)
    assert (book.ts_event_ns, book.ts_exchange_ns, book.ts_recv_ns) == (
        1723161256298_000000, 1723161256299_000000, 1723161255030314667)
    assert (book.update_id, book.prev_update_id, book.seq) == (5123107837557, 5123107831937, None)
    assert (len(book.bids), len(book.asks)) == (53, 29)
    assert book.bids[:3] == (BookLevel("58710.20", "0.014"), BookLevel("61496.50", "0.010"),
                             BookLevel("61510.90", "0.000"))  # size 0.000 removes the level; kept as sent
    assert book.asks[-1] == BookLevel("65880.70", "15.918")


def test_depth_updates_are_continuous(records: list[AvroRecord]) -> None:
    deltas = [r for r in records if isinstance(r, BookUpdate) and r.update_type == "DELTA"]
    breaks = sum(1 for prev, cur in itertools.pairwise(deltas) if cur.prev_update_id != prev.update_id)
    assert len(deltas) == 6_551
    assert breaks == 0


def test_rest_snapshot_in_the_capture_and_the_delta_that_bridges_it(capture: list[Line]) -> None:
    (line,) = [line for line in capture if line.parsed.records and
               isinstance(s := line.parsed.records[0], BookUpdate) and s.update_type == "SNAPSHOT"]
    snapshot = line.parsed.records[0]
    assert isinstance(snapshot, BookUpdate)
    assert line.line_no == 55
    assert line.parsed == parse_depth_snapshot(line.text, snapshot.ts_recv_ns, "btcusdt")
    assert (snapshot.event_id, snapshot.update_id, snapshot.prev_update_id, snapshot.depth) == (
        "BTCUSDT:1000:5123107852948:snapshot", 5123107852948, None, 1000)
    assert (snapshot.ts_event_ns, snapshot.ts_exchange_ns) == (1723161256493_000000, 1723161256501_000000)
    assert (len(snapshot.bids), len(snapshot.asks)) == (1000, 1000)
    assert (snapshot.bids[0], snapshot.asks[0]) == (BookLevel("61800.20", "2.909"), BookLevel("61800.30", "1.072"))
    # Binance's rule: the first delta to apply has pu < lastUpdateId <= u. Here it arrived before the REST
    # reply (line 42 vs 55), so a book builder must buffer deltas while the snapshot is in flight.
    bridges = [(line.line_no, r.update_id) for line in capture for r in line.parsed.records
               if isinstance(r, BookUpdate) and r.update_type == "DELTA" and r.prev_update_id is not None
               and r.prev_update_id < snapshot.update_id <= r.update_id]
    assert bridges == [(42, 5123107853551)]


def test_snapshot_needs_a_symbol_when_the_connection_named_none() -> None:
    reply = '{"lastUpdateId": 7, "E": 2, "T": 1, "bids": [["1.0", "2"]], "asks": []}'
    with pytest.raises(ParseError, match=r"depth snapshot: the reply names no symbol .* named 0 symbols"):
        BinanceUsdmParser().parse(reply, 0)
    (record,) = parse_depth_snapshot(reply, 5, "ethusdt", depth=500).records
    assert record == BookUpdate(
        venue="binance-usdm", symbol="ETHUSDT", event_id="ETHUSDT:500:7:snapshot", ts_event_ns=1_000_000,
        ts_exchange_ns=2_000_000, ts_recv_ns=5, update_type="SNAPSHOT", depth=500, update_id=7, seq=None,
        bids=(BookLevel("1.0", "2"),), asks=(),
    )


def test_bare_event_and_envelope_give_the_same_records(capture: list[Line]) -> None:
    for line in capture[:20]:
        frame = json.loads(line.text)
        if "data" in frame and frame["data"]["e"] != "depthUpdate":
            bare = BinanceUsdmParser().parse(json.dumps(frame["data"]), 1)
            enveloped = BinanceUsdmParser().parse(line.text, 1)
            assert bare.records == enveloped.records and bare.kind == enveloped.kind
            assert (bare.topic, enveloped.topic) == (frame["data"]["e"], frame["stream"])


def test_partial_depth_stream_is_a_top_n_snapshot(capture: list[Line]) -> None:
    # synthetic: the capture's first real depthUpdate re-labelled as a partial-depth stream
    frame = json.loads(capture[0].text)
    frame["stream"] = "btcusdt@depth20@100ms"
    (record,) = BinanceUsdmParser().parse(json.dumps(frame), 1).records
    assert isinstance(record, BookUpdate)
    assert (record.update_type, record.depth, record.event_id) == ("SNAPSHOT", 20, "BTCUSDT:20:5123107837557")


def test_insurance_fund_adl_and_na_trades_are_not_trades(capture: list[Line]) -> None:
    frame = json.loads(capture[2].text)  # the capture's first trade, a MARKET one
    for trade_type in ("INSURANCE_FUND", "ADL", "NA"):
        frame["data"]["X"] = trade_type  # synthetic: Binance sends these on the same stream
        assert BinanceUsdmParser().parse(json.dumps(frame), 1) == Parsed("ignored", (), "btcusdt@trade")


def test_agg_trade() -> None:
    # synthetic frame in the shape Binance documents for <symbol>@aggTrade
    frame = {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": 123456789, "s": "BTCUSDT", "a": 5933014,
             "p": "0.001", "q": "100", "f": 100, "l": 105, "T": 123456785, "m": True}}
    (trade,) = BinanceUsdmParser().parse(json.dumps(frame), 9).records
    assert trade == Trade(venue="binance-usdm", symbol="BTCUSDT", event_id="agg:5933014", ts_event_ns=123456785_000000,
                          ts_exchange_ns=123456789_000000, ts_recv_ns=9, taker_side="SELL", price="0.001", size="100")


def _force_order(side: str, filled: str = "0.288") -> str:
    # synthetic frame in the shape Binance documents for <symbol>@forceOrder; the prices are those of a frame
    # quoted on dev.binance.vision (p is the limit = bankruptcy price, ap the better average fill)
    return json.dumps({"stream": "btcusdt@forceOrder", "data": {
        "e": "forceOrder", "E": 1650898329201, "o": {
            "s": "BTCUSDT", "S": side, "o": "LIMIT", "f": "IOC", "q": "0.288", "p": "38886.54", "ap": "39021.00",
            "X": "FILLED", "l": filled, "z": filled, "T": 1650898329196}}})


def test_force_order_sell_is_a_long_liquidated_at_the_order_price() -> None:
    parsed = BinanceUsdmParser().parse(_force_order("SELL"), 3)
    assert parsed.kind == "liquidation" and parsed.topic == "btcusdt@forceOrder"
    assert parsed.records == (Liquidation(
        venue="binance-usdm", symbol="BTCUSDT", event_id="BTCUSDT:1650898329196:SELL:38886.54:0.288:1",
        ts_event_ns=1650898329196_000000, ts_exchange_ns=1650898329201_000000, ts_recv_ns=3,
        position_side="LONG", bankruptcy_price="38886.54", size="0.288", feed="forceOrder",
    ),)


def test_force_order_buy_is_a_short_and_unfilled_size_falls_back_to_the_order_size() -> None:
    (record,) = BinanceUsdmParser().parse(_force_order("BUY", filled="0.100"), 3).records
    assert isinstance(record, Liquidation)
    assert (record.position_side, record.bankruptcy_price, record.size) == ("SHORT", "38886.54", "0.100")
    (unfilled,) = BinanceUsdmParser().parse(_force_order("BUY", filled="0"), 3).records
    assert isinstance(unfilled, Liquidation)
    assert (unfilled.size, unfilled.event_id) == ("0.288", "BTCUSDT:1650898329196:BUY:38886.54:0.288:1")


def test_book_ticker_with_empty_sizes_has_microprice_equal_to_mid() -> None:
    frame = {"e": "bookTicker", "u": 9, "s": "BTCUSDT", "b": "10.0", "B": "0", "a": "11.0", "A": "0.000",
             "T": 1, "E": 2}  # synthetic
    (top,) = BinanceUsdmParser().parse(json.dumps(frame), 3).records
    assert isinstance(top, TopOfBook)
    assert (top.mid, top.microprice) == (10.5, 10.5)


def test_subscription_reply_is_control() -> None:
    assert BinanceUsdmParser().parse('{"result": null, "id": 1}', 0) == Parsed("control")


def test_one_record_of_each_kind_round_trips_through_its_avro_schema(records: list[AvroRecord]) -> None:
    samples = [_first(records, cls) for cls in (Trade, TopOfBook, BookUpdate)]
    samples += BinanceUsdmParser().parse(_force_order("SELL"), 3).records
    for record in samples:
        schema = load(record.SCHEMA)
        assert type(record).from_avro(decode_body(schema, encode_body(schema, record.to_avro()))) == record


_TRADE = '"e": "trade", "E": 2, "T": 1, "s": "BTCUSDT", "t": 7, "X": "MARKET", "m": false'


@pytest.mark.parametrize(("frame", "message"), [
    ("{not json", "frame is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[1, 2]", "frame is a JSON list, expected an object"),
    ('{"foo": 1}', "frame has neither 'e' nor 'stream' nor 'result'"),
    ('{"stream": "btcusdt@trade", "data": [1]}', "stream btcusdt@trade: 'data' is a list, expected an object"),
    ('{"stream": "btcusdt@trade", "data": {"p": "1"}}', "stream btcusdt@trade: data has no event type 'e'"),
    ('{"e": "kline", "E": 1}', "unknown event type 'kline'"),
    ('{"error": {"code": 2, "msg": "Invalid request"}, "id": 4}', "error reply 4: code 2: Invalid request"),
    ("{" + _TRADE + ', "q": "1"}', "event trade: missing field 'p'"),
    ("{" + _TRADE + ', "p": 1.5, "q": "1"}', "event trade: field 'p' = 1.5 is not a decimal string"),
    ("{" + _TRADE + ', "p": "1e5", "q": "1"}', "event trade: field 'p' = '1e5' is not a decimal string"),
    ('{"e": "trade", "E": 2, "T": "1", "s": "BTCUSDT", "t": 7, "X": "MARKET", "m": false, "p": "1", "q": "1"}',
     "event trade: field 'T' = '1' is not an integer"),
    ('{"e": "trade", "E": 2, "T": 1, "s": "BTCUSDT", "t": 7, "X": "MARKET", "m": "no", "p": "1", "q": "1"}',
     "event trade: field 'm' = 'no' is not a boolean"),
    ('{"e": "trade", "X": "LIMIT"}', "event trade: trade type X = 'LIMIT' is not MARKET, INSURANCE_FUND, ADL or NA"),
    ('{"e": "forceOrder", "E": 1, "o": {"S": "HOLD"}}', "event forceOrder: side 'HOLD' is neither BUY nor SELL"),
    ('{"e": "forceOrder", "E": 1, "o": "x"}', "event forceOrder: 'o' is a str, expected an object"),
    ('{"e": "forceOrder", "E": 1, "o": {"S": "SELL", "p": "1"}}', "event forceOrder: missing field 'z'"),
    ('{"stream": "btcusdt@depth@0ms", "data": {"e": "depthUpdate", "E": 2, "T": 1, "s": "BTCUSDT", "u": 5, '
     '"pu": 4, "b": [["1.0"]], "a": []}}', "event depthUpdate: level ['1.0'] in 'b' is not [price, size]"),
    ('{"stream": "btcusdt@depth@0ms", "data": {"e": "depthUpdate", "E": 2, "T": 1, "s": "BTCUSDT", "u": 5, '
     '"pu": 4, "b": [], "a": {}}}', "event depthUpdate: 'a' is a dict, expected an array"),
    ('{"stream": "btcusdt@trade", "data": {"e": "depthUpdate"}}',
     "event depthUpdate: stream 'btcusdt@trade' is not a depth stream"),
    ('{"e": "bookTicker", "u": 1, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "T": 1, "E": 1}',
     "event bookTicker: missing field 'A'"),
])
def test_malformed_frames_raise_named_errors(frame: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        BinanceUsdmParser().parse(frame, 0)
    assert str(err.value) == message


@pytest.mark.parametrize(("reply", "message"), [
    ('{"code": -1121, "msg": "Invalid symbol."}', "depth snapshot: code -1121: Invalid symbol."),
    ("oops", "depth snapshot: reply is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ('{"lastUpdateId": 1, "E": 1, "T": 1, "bids": []}', "depth snapshot: missing field 'asks'"),
    ('{"lastUpdateId": "1", "E": 1, "T": 1, "bids": [], "asks": []}',
     "depth snapshot: field 'lastUpdateId' = '1' is not an integer"),
])
def test_malformed_depth_snapshots_raise_named_errors(reply: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_depth_snapshot(reply, 0, "BTCUSDT")
    assert str(err.value) == message
