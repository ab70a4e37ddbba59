"""The compiled path (core/) on trades and book tickers against its specification, the Python parser
plus fastavro (depth frames: tests/streams/test_compiled_books.py).

Byte for byte on every such frame of the real capture, and on mutated real frames it either declines (None, and
the Python parser decides) or yields exactly the Python result.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqbot.data import BINANCE_CAPTURE
from schemas import load
from schemas.records import TopOfBook, Trade
from streams.avro import encode_body
from streams.binance.parse import BinanceUsdmParser
from streams.capture import read_capture
from streams.orderbook import BookBuilder
from streams.venue import BookStep, Encoded, ParseError


@cache
def _real_frames() -> tuple[tuple[int, str], ...]:
    return tuple((f.ts_recv_ns, f.data) for f in read_capture(BINANCE_CAPTURE, default_venue="binance-usdm")
                 if f.kind == "recv")


def _python(frame: str, ts_recv_ns: int) -> tuple[str, str, str, bytes, int] | None:
    """What the Python parser and fastavro make of a frame: the compiled path's specification."""
    try:
        parsed = BinanceUsdmParser().parse(frame, ts_recv_ns)
    except ParseError:
        return None
    if len(parsed.records) != 1:
        return None
    (record,) = parsed.records
    if not isinstance(record, Trade | TopOfBook):
        return None
    try:
        body = encode_body(load(record.SCHEMA), record.to_avro())
    except Exception:  # a record the schema refuses (ingest dead-letters it): the compiled path must decline
        return None
    return parsed.kind, record.SCHEMA, record.kafka_key(), body, record.ts_exchange_ns


def _fields(hot: Encoded | BookStep | None) -> tuple[str, str, str, bytes, int] | None:
    if not isinstance(hot, Encoded):
        return None
    return hot.kind, hot.schema, hot.key, hot.body, hot.ts_exchange_ns


def _hot(frame: str, ts_recv_ns: int) -> Encoded | BookStep | None:
    return BinanceUsdmParser().encoded(frame, ts_recv_ns, BookBuilder().native)


def test_every_trade_and_book_ticker_of_the_real_capture_is_byte_identical() -> None:
    parser, books = BinanceUsdmParser(), BookBuilder()
    kinds: Counter[str] = Counter()
    for ts_recv_ns, frame in _real_frames():
        hot = parser.encoded(frame, ts_recv_ns, books.native)
        if not isinstance(hot, Encoded):
            kinds["declined" if hot is None else "book"] += 1
            continue
        kinds[hot.schema] += 1
        assert _fields(hot) == _python(frame, ts_recv_ns), frame
    # 21,313 MARKET trades, 66,089 book tickers, 6,551 depth diffs; the REST depth snapshot goes the Python way
    assert kinds == {"liqbot.Trade": 21_313, "liqbot.TopOfBook": 66_089, "book": 6_551, "declined": 1}


def test_frames_it_cannot_prove_equal_are_left_to_python() -> None:
    ticker = json.loads(next(f for _, f in _real_frames() if '"bookTicker"' in f))

    def encoded(change: dict[str, Any]) -> Encoded | BookStep | None:
        return _hot(json.dumps({**ticker, "data": {**ticker["data"], **change}}), 1)

    assert encoded({}) is not None
    assert encoded({"s": "BTC\u00e9"}) is None  # an escaped string: Python decodes it, the compiled path declines
    assert encoded({"u": 2**63}) is None  # beyond a long
    assert encoded({"T": 2**62}) is None  # milliseconds whose nanoseconds overflow a long
    assert encoded({"b": 61800.2}) is None  # a number, not decimal text: Python's error, not a guess
    assert encoded({"e": "depthUpdate"}) is None  # a book ticker's stream is not a depth stream
    assert _hot(json.dumps({**ticker, "stream": None}), 1) is None


@st.composite
def mutated_hot_frame(draw: st.DrawFn) -> str:
    # trades and book tickers (not the depth frames, nor the REST depth reply among them, which has no "data")
    frames = [f for _, f in _real_frames()[:3000] if '"depthUpdate"' not in f and '"data"' in f]
    frame = json.loads(draw(st.sampled_from(frames)))
    data = frame["data"]
    key = draw(st.sampled_from(sorted(data)))
    how = draw(st.sampled_from(["drop", "replace", "bare"]))
    if how == "drop":
        del data[key]
    elif how == "replace":
        data[key] = draw(st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6),
            st.from_regex(r"-?[0-9]{0,3}\.?[0-9]{0,3}", fullmatch=True), st.just([]), st.just({})))
    else:
        frame = data  # a raw-stream connection sends the event without the envelope
    return json.dumps(frame, ensure_ascii=draw(st.booleans()))


@given(mutated_hot_frame(), st.integers(0, 2**62))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_real_frames_either_match_python_or_are_declined(frame: str, ts_recv_ns: int) -> None:
    hot = _hot(frame, ts_recv_ns)
    if hot is not None:
        assert _fields(hot) == _python(frame, ts_recv_ns)


@pytest.mark.parametrize("frame", ["", "[]", "{", '"bookTicker"', '{"e": 1}', '{"stream": "x", "data": []}'])
def test_non_events_are_declined(frame: str) -> None:
    assert _hot(frame, 0) is None
