"""Bybit v5 frames to typed records, on the real capture; malformed frames raise errors naming topic and field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from schemas.records import (
    AvroRecord,
    BookUpdate,
    FundingRate,
    Instrument,
    Liquidation,
    OpenInterest,
    Ticker,
    Trade,
)
from streams.bybit.parse import BybitPublicParser, parse_instruments, parse_rest
from streams.capture import read_capture
from streams.roundtrip import records_from_captures
from streams.venue import ParseError


@pytest.fixture(scope="module")
def parsed(bybit_capture: Path) -> list[AvroRecord]:
    return records_from_captures([bybit_capture]).records


def test_whole_capture_parses_with_no_error(bybit_capture: Path) -> None:
    result = records_from_captures([bybit_capture])
    assert result.errors == []
    assert result.frames == Counter(book=2148, ticker=839, trade=120, ignored=96, control=24, instrument=2)
    kinds = Counter((type(r).__name__, getattr(r, "venue", "")) for r in result.records)
    assert kinds == Counter({
        ("BookUpdate", "bybit-linear"): 1598, ("BookUpdate", "bybit-spot"): 550,
        ("TopOfBook", "bybit-linear"): 1598, ("TopOfBook", "bybit-spot"): 550,
        ("Ticker", "bybit-linear"): 758, ("Ticker", "bybit-spot"): 81,
        ("Trade", "bybit-linear"): 327, ("Trade", "bybit-spot"): 20,
        ("Instrument", "bybit-linear"): 800, ("Instrument", "bybit-spot"): 557,
    })


def test_first_linear_trade_exact(parsed: list[AvroRecord]) -> None:
    trade = next(r for r in parsed if isinstance(r, Trade) and r.venue == "bybit-linear")
    assert trade == Trade(
        venue="bybit-linear", symbol="BTCUSDT", event_id="a9188a0a-82bc-50de-be60-03eedbe3cdd7",
        ts_event_ns=1786310819680_000000, ts_exchange_ns=1786310819681_000000, ts_recv_ns=1786310819965676_000,
        taker_side="SELL", price="65114.20", size="0.004", tick_direction="MinusTick", block_trade=False,
        rpi=False, seq=753843954913,
    )


def test_event_time_never_after_message_time_and_receive_after_both(parsed: list[AvroRecord]) -> None:
    for r in parsed:
        if isinstance(r, Trade):
            assert r.ts_event_ns <= r.ts_exchange_ns <= r.ts_recv_ns


def test_book_snapshot_then_deltas_with_update_ids(parsed: list[AvroRecord]) -> None:
    btc = [r for r in parsed if isinstance(r, BookUpdate) and r.venue == "bybit-linear" and r.symbol == "BTCUSDT"]
    assert btc[0].update_type == "SNAPSHOT" and len(btc[0].bids) == 200 and len(btc[0].asks) == 200
    assert btc[0].bids[0].price == "65114.20" and btc[0].bids[0].size == "6.054"
    assert {r.update_type for r in btc[1:]} == {"DELTA"}
    ids = [r.update_id for r in btc]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_ticker_deltas_merge_into_full_state(parsed: list[AvroRecord]) -> None:
    btc = [r for r in parsed if isinstance(r, Ticker) and r.venue == "bybit-linear" and r.symbol == "BTCUSDT"]
    first, last = btc[0], btc[-1]
    assert first.mark_price == "65117.44" and first.open_interest == "59891.732"
    assert first.funding_interval_hours == 8 and first.next_funding_time_ns is not None
    # deltas carry only what changed; everything else keeps its last value
    assert all(t.funding_rate is not None and t.mark_price is not None for t in btc)
    assert last.ts_exchange_ns > first.ts_exchange_ns


def test_instruments_rules_from_rest_reply(parsed: list[AvroRecord]) -> None:
    instruments = {(r.venue, r.symbol): r for r in parsed if isinstance(r, Instrument)}
    btc = instruments[("bybit-linear", "BTCUSDT")]
    assert (btc.tick_size, btc.qty_step, btc.contract_type) == ("0.10", "0.001", "LinearPerpetual")
    spot = instruments[("bybit-spot", "BTCUSDT")]
    assert (spot.tick_size, spot.qty_step, spot.contract_type) == ("0.1", "0.000001", None)


def test_all_liquidation_frames_side_is_the_liquidated_position(liquidation_frames: Path) -> None:
    parser = BybitPublicParser()
    records = [r for f in read_capture(liquidation_frames) for r in parser.parse(f.data, f.ts_recv_ns).records
               if isinstance(r, Liquidation)]
    assert len(records) == 5
    assert [(r.symbol, r.position_side, r.bankruptcy_price, r.size) for r in records] == [
        ("STRKUSDT", "LONG", "0.05165", "2084.9"),
        ("BTCUSDT", "LONG", "82396.90", "0.006"),
        ("BTCUSDT", "LONG", "82394.30", "0.038"),
        ("ADAUSDT", "SHORT", "0.1915", "13248"),
        ("BTCUSDT", "LONG", "85823.60", "0.001"),
    ]
    assert all(r.feed == "allLiquidation" for r in records)


def test_identical_entries_in_one_frame_stay_distinct_and_repeats_keep_their_ids(liquidation_frames: Path) -> None:
    frame = json.loads(liquidation_frames.read_text().splitlines()[0])
    frame["data"] = frame["data"] * 2  # synthetic: the same real entry twice in one frame
    parser = BybitPublicParser()
    first = [r for r in parser.parse(json.dumps(frame), 1).records if isinstance(r, Liquidation)]
    again = [r for r in parser.parse(json.dumps(frame), 2).records if isinstance(r, Liquidation)]
    assert [r.event_id for r in first] == [
        "STRKUSDT:1791091285156:Buy:0.05165:2084.9:1", "STRKUSDT:1791091285156:Buy:0.05165:2084.9:2",
    ]
    assert [r.event_id for r in again] == [r.event_id for r in first]


def test_deprecated_liquidation_topic_still_parses() -> None:
    # synthetic frame in the shape Bybit documented for `liquidation.{symbol}` (deprecated 2025-02-20)
    frame = {"topic": "liquidation.BTCUSDT", "type": "snapshot", "ts": 1673251091822,
             "data": {"price": "18599.50", "side": "Sell", "size": "0.001", "symbol": "BTCUSDT",
                      "updatedTime": 1673251091822}}
    (record,) = BybitPublicParser().parse(json.dumps(frame), 5).records
    assert isinstance(record, Liquidation)
    assert (record.position_side, record.bankruptcy_price, record.feed) == ("SHORT", "18599.50", "liquidation")


@pytest.mark.parametrize(("frame", "message"), [
    ("{not json", "frame is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[1, 2]", "frame is a JSON list, expected an object"),
    ('{"foo": 1}', "frame has neither 'topic' nor 'op'"),
    ('{"topic": "nonsense.BTCUSDT", "ts": 1, "data": []}', "topic nonsense.BTCUSDT: unknown channel 'nonsense'"),
    ('{"topic": "publicTrade.BTCUSDT", "ts": 1}', "topic publicTrade.BTCUSDT: missing field 'data'"),
    ('{"topic": "publicTrade.BTCUSDT", "ts": 1, "data": [{"T": 1, "s": "BTCUSDT", "S": "Up", "v": "1", "p": "2", '
     '"i": "x"}]}', "topic publicTrade.BTCUSDT: side 'Up' is neither Buy nor Sell"),
    ('{"topic": "publicTrade.BTCUSDT", "ts": 1, "data": [{"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": 2.5, '
     '"i": "x"}]}', "topic publicTrade.BTCUSDT: field 'p' = 2.5 is not a decimal string"),
    ('{"topic": "allLiquidation.BTCUSDT", "ts": 1, "data": {"T": 1}}',
     "topic allLiquidation.BTCUSDT: 'data' is a dict, expected an array"),
    ('{"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1, "data": {"s": "BTCUSDT", "u": 7, '
     '"b": [["1.0"]], "a": []}}', "topic orderbook.50.BTCUSDT: level in 'b' has 1 entries, expected [price, size]"),
])
def test_malformed_frames_raise_named_errors(frame: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        BybitPublicParser().parse(frame, 0)
    assert str(err.value) == message


def test_open_interest_and_funding_history_replies() -> None:
    # synthetic replies in the documented shape of /v5/market/open-interest and /v5/market/funding/history
    oi = ('{"retCode":0,"retMsg":"OK","result":{"symbol":"BTCUSDT","category":"linear","list":['
          '{"openInterest":"59891.732","timestamp":"1786310700000"}],"nextPageCursor":""},"time":1786310817197}')
    (record,) = parse_rest("https://api.bybit.com/v5/market/open-interest?category=linear&symbol=BTCUSDT"
                           "&intervalTime=5min", oi, 7, "bybit-linear").records
    assert record == OpenInterest(venue="bybit-linear", symbol="BTCUSDT", event_id="BTCUSDT:5min:1786310700000",
                                  ts_event_ns=1786310700000_000000, ts_exchange_ns=1786310817197_000000,
                                  ts_recv_ns=7, interval="5min", open_interest="59891.732")
    funding = ('{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT",'
               '"fundingRate":"-0.000012","fundingRateTimestamp":"1786291200000"}]},"time":1786310817197}')
    (rate,) = parse_rest("/v5/market/funding/history?category=linear", funding, 7, "bybit-linear").records
    assert isinstance(rate, FundingRate) and (rate.funding_rate, rate.event_id) == ("-0.000012",
                                                                                      "BTCUSDT:1786291200000")
    with pytest.raises(ParseError, match="no parser for the REST endpoint /v5/market/kline"):
        parse_rest("/v5/market/kline?x=1", funding, 7, "bybit-linear")


def test_rest_error_reply_is_an_error() -> None:
    with pytest.raises(ParseError, match="instruments-info: retCode 10006: Too many visits"):
        parse_instruments('{"retCode": 10006, "retMsg": "Too many visits", "result": {}, "time": 1}', 0,
                          "bybit-linear")
