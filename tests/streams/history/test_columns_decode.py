"""The compiled column decoder (core/src/columns.rs) against the reference path (fastavro, then pyarrow).

The sink decodes with the compiled one; the property that matters is that its columns, and its reason for each row
it refuses, never differ from the reference's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE, LIQUIDATION_FRAMES
from schemas import load_all
from schemas.records import RECORD_TYPES, AvroRecord, Trade
from streams.avro import encode_body
from streams.capture_replay import capture_records
from streams.history.arrow import DecodedBatch, decode_batch, decode_batch_python
from streams.history.columns import columns_for
from streams.roundtrip import records_from_captures
from tests.avro_strategies import PRIMITIVES, avro_datum


@cache
def _real() -> dict[str, list[AvroRecord]]:
    records = [*capture_records(BINANCE_CAPTURE, "binance-usdm"), *capture_records(BYBIT_CAPTURE, "bybit-linear"),
               *records_from_captures([LIQUIDATION_FRAMES]).records]
    by_schema: dict[str, list[AvroRecord]] = {}
    for record in records:
        by_schema.setdefault(record.SCHEMA, []).append(record)
    return by_schema


def _body(name: str, datum: dict[str, Any]) -> bytes:
    return encode_body(load_all()[name], datum)


def _values(batch: DecodedBatch) -> list[str]:
    # repr: exact for floats, NaN and -0.0, and it tells None from "" and [] apart
    return [repr(column.to_pylist()) for column in batch.columns]


def _agree(name: str, payloads: Sequence[bytes], offset: int = 0) -> DecodedBatch:
    """The compiled decoding of `payloads`, asserted equal to the reference's in types, values and refusals."""
    writer = load_all()[name]
    compiled, reference = decode_batch(writer, payloads, offset), decode_batch_python(writer, payloads, offset)
    for column in compiled.columns:
        column.validate(full=True)
    assert [c.type for c in compiled.columns] == [c.type for c in reference.columns]
    assert [c.arrow_type for c in columns_for(name)] == [c.type for c in compiled.columns]
    assert compiled.good == reference.good
    assert compiled.bad == reference.bad
    assert _values(compiled) == _values(reference)
    return compiled


def test_every_real_record_gives_the_reference_columns() -> None:
    real = _real()
    assert set(real) == {"liqbot.BookUpdate", "liqbot.Instrument", "liqbot.Liquidation", "liqbot.Ticker",
                         "liqbot.TopOfBook", "liqbot.Trade"}
    total = 0
    for name, records in real.items():
        header = b"\x00\x00\x00\x00\x07"  # a Confluent frame: the decoders read from the offset after it
        batch = _agree(name, [header + _body(name, r.to_avro()) for r in records], offset=len(header))
        assert batch.bad == [] and len(batch.good) == len(records)
        assert all(len(c) == len(records) for c in batch.columns)
        total += len(records)
    assert total > 6000


def test_real_book_levels_keep_the_venue_text_exactly() -> None:
    books = [r for r in _real()["liqbot.BookUpdate"] if getattr(r, "bids", ())][:50]
    batch = _agree("liqbot.BookUpdate", [_body("liqbot.BookUpdate", r.to_avro()) for r in books])
    names = [c.name for c in columns_for("liqbot.BookUpdate")]
    prices = batch.columns[names.index("bids.price")].to_pylist()
    assert len(books) == 50
    assert prices == [[Decimal(level.price) for level in r.bids] for r in books]  # type: ignore[attr-defined]


def _trade(**changes: Any) -> bytes:
    datum = _real()["liqbot.Trade"][0].to_avro() | changes
    return _body("liqbot.Trade", datum)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"price": "1." + "1" * 19}, "field price: '1.1111111111111111111' has more than 18 decimal places; "
                                 "Decimal(38, 18) would round it"),
    ({"size": "9" * 21}, f"field size: '{'9' * 21}' has more than 20 integer digits; Decimal(38, 18) cannot hold it"),
    ({"price": "abc"}, "field price: 'abc' is not a decimal number"),
    ({"price": "."}, "field price: '.' is not a decimal number"),
    ({"price": "1e5"}, "field price: '1e5' is not a decimal number"),
    ({"price": "١٢"}, "field price: '١٢' is not a decimal number"),  # Arabic-Indic digits: not the venue's text
    ({"ts_event_ns": -3 * 10**18}, "field ts_event_ns: -3000000000000000000 ns is outside DateTime64(9)'s range "
                                   "1900-01-01 .. 2262-04-11"),
])
def test_a_value_its_column_cannot_hold_refuses_its_row_only(changes: dict[str, Any], reason: str) -> None:
    good = _trade()
    batch = _agree("liqbot.Trade", [good, _trade(**changes), good])
    assert batch.good == [0, 2]
    assert batch.bad == [(1, reason)]
    assert all(len(c) == 2 for c in batch.columns)


def test_values_at_the_edges_of_their_columns_are_kept() -> None:
    edge = _trade(price="-" + "9" * 20 + "." + "9" * 18, size="0.000000000000000001",
                  ts_event_ns=-2_208_988_800 * 10**9)
    batch = _agree("liqbot.Trade", [edge, _trade(price="+12.500000000000000000000", size="007")])
    assert batch.bad == []
    names = [c.name for c in columns_for("liqbot.Trade")]
    assert [str(v) for v in batch.columns[names.index("price")].to_pylist()] == \
        ["-" + "9" * 20 + "." + "9" * 18, "12.500000000000000000"]


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda body: body[:10], "malformed body"),
    (lambda body: body + b"\x00", "malformed body"),
    (lambda body: b"\xff" * 40, "malformed body"),
    (lambda body: b"", "malformed body"),
])
def test_a_body_that_is_not_one_record_is_refused_with_fastavros_reason(damage: Any, needle: str) -> None:
    good = _trade()
    writer = load_all()["liqbot.Trade"]
    compiled = decode_batch(writer, [good, damage(good), good], 0)
    reference = decode_batch_python(writer, [good, damage(good), good], 0)
    assert compiled.good == reference.good == [0, 2]
    assert [i for i, _ in compiled.bad] == [1]
    assert _values(compiled) == _values(reference)
    reason = compiled.bad[0][1]
    # fastavro's own message where it has one (truncation); the compiled one's where fastavro accepts the bytes
    assert reason == reference.bad[0][1] or (needle in reason and reference.bad == [])


def test_a_batch_of_only_bad_rows_gives_empty_columns() -> None:
    batch = _agree("liqbot.Trade", [_trade(price="x"), _trade(size="y")])
    assert batch.good == [] and [i for i, _ in batch.bad] == [0, 1]
    assert all(len(c) == 0 for c in batch.columns)


# SYNTHETIC data from here: every schema, including those no capture reaches (features, predictions, orders).
_DECIMAL_TEXT = st.from_regex(r"[+-]?[0-9]{0,22}(\.[0-9]{0,20})?", fullmatch=True)
# decimal text often (a decimal field gets valid and invalid values), and times mostly inside DateTime64(9)'s range
_PRIMITIVES = {**PRIMITIVES, "long": st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(0, 4 * 10**18)),
               "string": st.one_of(st.text(max_size=6), _DECIMAL_TEXT), "bytes": st.binary(max_size=6)}


@cache
def _datums(name: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(avro_datum(json.loads(load_all()[name].text), _PRIMITIVES, max_items=3), min_size=1, max_size=8)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_batch_of_any_schema_decodes_like_the_reference(name: str, data: st.DataObject) -> None:
    _agree(name, [_body(name, datum) for datum in data.draw(_datums(name))])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 10**6), cut=st.integers(0, 10**6), flip=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_damaged_real_bodies_are_refused_alone(index: int, cut: int, flip: int, bit: int) -> None:
    """A truncated or bit-flipped real body beside good ones: the good rows stay; the outcome matches the reference."""
    books = _real()["liqbot.BookUpdate"]
    body = _body("liqbot.BookUpdate", books[index % len(books)].to_avro())
    damaged = bytearray(body[: cut % (len(body) + 1)])
    if damaged:
        damaged[flip % len(damaged)] ^= 1 << bit
    good = _body("liqbot.BookUpdate", books[0].to_avro())
    writer = load_all()["liqbot.BookUpdate"]
    payloads = [good, bytes(damaged), good]
    compiled, reference = decode_batch(writer, payloads, 0), decode_batch_python(writer, payloads, 0)
    assert {0, 2} <= set(compiled.good)
    if reference.bad and not compiled.bad:
        pytest.fail(f"the compiled decoder kept a row the reference refused: {reference.bad}")
    if compiled.good == reference.good:
        assert _values(compiled) == _values(reference)
        for (_, ours), (_, theirs) in zip(compiled.bad, reference.bad, strict=True):
            # a cut body can also hold a bad value before the cut: the compiled decoder, reading in order, names it
            assert ours == theirs or (ours.startswith("field ") and theirs.startswith("cannot decode"))
    else:
        # fastavro reads past a body's end without complaint; the compiled decoder refuses the extra bytes
        assert compiled.bad[0][1].startswith("malformed body") and reference.bad == []


def test_a_trade_with_all_of_its_optional_fields_null() -> None:
    batch = _agree("liqbot.Trade", [_trade(tick_direction=None, rpi=None, seq=None)])
    names = [c.name for c in columns_for("liqbot.Trade")]
    assert batch.columns[names.index("seq")].null_count == 1
    assert isinstance(_real()["liqbot.Trade"][0], Trade)
    assert batch.columns[names.index("rpi")].type == pa.bool_()
