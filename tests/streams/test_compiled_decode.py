"""The compiled Avro decoder (core/src/decode.rs) against fastavro: the same records, or the same error.

`SingleObjectSerde.decode` takes the compiled path for a body written with the current schema and falls back to
fastavro on any error, so the property that matters is that the outcome never depends on which path ran.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE, LIQUIDATION_FRAMES
from schemas import load_all
from schemas.records import RECORD_TYPES, AvroRecord, BookUpdate
from streams.avro import SerdeError, decode_body, encode_body
from streams.capture_replay import capture_records
from streams.roundtrip import records_from_captures
from streams.serde import SingleObjectSerde, _compiled
from tests.avro_strategies import avro_datum


@cache
def _real() -> tuple[AvroRecord, ...]:
    liquidations = records_from_captures([LIQUIDATION_FRAMES]).records
    return (*capture_records(BINANCE_CAPTURE, "binance-usdm"), *capture_records(BYBIT_CAPTURE, "bybit-linear"),
            *liquidations)


def _by_fastavro(name: str, body: bytes) -> AvroRecord | str:
    """What decoding gives without the compiled path: the record, or the error's class."""
    try:
        return RECORD_TYPES[name].from_avro(decode_body(load_all()[name], body))
    except (SerdeError, TypeError) as exc:
        return type(exc).__name__


def _by_compiled(name: str, body: bytes) -> AvroRecord | str:
    try:
        record: AvroRecord = _compiled(name).decode(body, 0)
        return record
    except ValueError as exc:
        return type(exc).__name__


def test_every_real_record_decodes_to_what_fastavro_gives() -> None:
    records = _real()
    kinds = {r.SCHEMA for r in records}
    assert kinds == {"liqbot.BookUpdate", "liqbot.Instrument", "liqbot.Liquidation", "liqbot.Ticker",
                     "liqbot.TopOfBook", "liqbot.Trade"}
    for record in records:
        body = encode_body(load_all()[record.SCHEMA], record.to_avro())
        decoded = _compiled(record.SCHEMA).decode(body, 0)
        assert decoded == record == _by_fastavro(record.SCHEMA, body)
        assert type(decoded) is type(record)
    books = [r for r in records if isinstance(r, BookUpdate) and r.bids]
    assert len(books) > 1000 and all(type(r.bids) is tuple for r in books)


@cache
def _datums(name: str) -> st.SearchStrategy[Any]:
    return avro_datum(json.loads(load_all()[name].text))


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_datum_of_any_schema_decodes_like_fastavro(name: str, data: st.DataObject) -> None:
    body = encode_body(load_all()[name], data.draw(_datums(name)))
    # repr: exact for floats and NaN, and it shows tuples, lists and nested classes apart
    assert repr(_by_compiled(name, body)) == repr(_by_fastavro(name, body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 10**9), cut=st.integers(0, 10**6), flip=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_damaged_real_payloads_give_the_same_outcome_either_way(index: int, cut: int, flip: int, bit: int) -> None:
    """A truncated or bit-flipped body: the serde's answer (record or SerdeError) is fastavro's."""
    records = _real()
    record = records[index % len(records)]
    serde = SingleObjectSerde()
    good = serde.encode("t", record)
    header = len(good) - len(encode_body(load_all()[record.SCHEMA], record.to_avro()))
    damaged = bytearray(good[: header + cut % (len(good) - header + 1)])
    if len(damaged) > header:
        damaged[header + flip % (len(damaged) - header)] ^= 1 << bit
    try:
        outcome: AvroRecord | str = serde.decode("t", bytes(damaged))
    except SerdeError as exc:
        outcome = type(exc).__name__
    expected = _by_fastavro(record.SCHEMA, bytes(damaged[header:]))
    assert repr(outcome) == repr(expected)


def test_a_body_with_bytes_after_the_last_field_is_refused() -> None:
    record = _real()[0]
    body = encode_body(load_all()[record.SCHEMA], record.to_avro()) + b"\x00"
    with pytest.raises(ValueError, match="1 bytes left after the last field"):
        _compiled(record.SCHEMA).decode(body, 0)
    with pytest.raises(ValueError, match="ends inside a value"):
        _compiled(record.SCHEMA).decode(body[:10], 0)
