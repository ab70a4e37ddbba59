"""Avro bodies: every real record kind round-trips; bad records and bad bytes name schema and field."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

import schemas
from schemas.records import AvroRecord, BookLevel, BookUpdate, DeadLetter, Trade
from streams.avro import SerdeError, decode_body, encode_body
from streams.roundtrip import records_from_captures


@pytest.fixture(scope="module")
def real_records(bybit_capture: Path, liquidation_frames: Path) -> dict[str, AvroRecord]:
    """The first record of each kind in the real captures."""
    first: dict[str, AvroRecord] = {}
    for record in records_from_captures([bybit_capture, liquidation_frames]).records:
        first.setdefault(record.SCHEMA, record)
    return first


def _trade(real_records: dict[str, AvroRecord]) -> Trade:
    trade = real_records["liqbot.Trade"]
    assert isinstance(trade, Trade)
    return trade


def test_every_real_record_kind_round_trips_exactly(real_records: dict[str, AvroRecord]) -> None:
    assert sorted(real_records) == ["liqbot.BookUpdate", "liqbot.Instrument", "liqbot.Liquidation",
                                    "liqbot.Ticker", "liqbot.TopOfBook", "liqbot.Trade"]
    for name, record in real_records.items():
        schema = schemas.load(name)
        back = type(record).from_avro(decode_body(schema, encode_body(schema, record.to_avro())))
        assert back == record


def test_wrong_type_names_schema_and_field(real_records: dict[str, AvroRecord]) -> None:
    bad = replace(_trade(real_records), price=65114.2)  # type: ignore[arg-type]  # a float price: the prototype's bug
    with pytest.raises(SerdeError) as err:
        encode_body(schemas.load("liqbot.Trade"), bad.to_avro())
    assert err.value.schema == "liqbot.Trade" and err.value.field == "price"
    assert str(err.value) == "cannot encode liqbot.Trade: field price: value 65114.2 (float) does not match string"


def test_bad_enum_value_names_the_field(real_records: dict[str, AvroRecord]) -> None:
    bad = replace(_trade(real_records), taker_side="Buy")  # type: ignore[arg-type]  # venue wire text, not mapped
    with pytest.raises(SerdeError, match=r"liqbot.Trade: field taker_side: value 'Buy' \(str\) does not match enum"):
        encode_body(schemas.load("liqbot.Trade"), bad.to_avro())


def test_nested_field_is_named(real_records: dict[str, AvroRecord]) -> None:
    book = real_records["liqbot.BookUpdate"]
    assert isinstance(book, BookUpdate)
    bad = replace(book, bids=(BookLevel("65114.20", 6.054),))  # type: ignore[arg-type]
    with pytest.raises(SerdeError) as err:
        encode_body(schemas.load("liqbot.BookUpdate"), bad.to_avro())
    assert err.value.field == "liqbot.BookLevel.size"


def test_unknown_field_is_rejected_not_dropped(real_records: dict[str, AvroRecord]) -> None:
    datum = {**_trade(real_records).to_avro(), "fee": "0.1"}
    with pytest.raises(SerdeError, match=r"cannot encode liqbot\.Trade: .*more fields than the schema.*fee"):
        encode_body(schemas.load("liqbot.Trade"), datum)


def test_truncated_body_names_the_first_unreadable_field(real_records: dict[str, AvroRecord]) -> None:
    schema = schemas.load("liqbot.Trade")
    body = encode_body(schema, _trade(real_records).to_avro())
    cut = len(_trade(real_records).venue) + 1 + len(_trade(real_records).symbol) + 1 + 3  # inside event_id
    with pytest.raises(SerdeError) as err:
        decode_body(schema, body[:cut])
    assert err.value.field == "event_id"
    assert str(err.value).startswith(f"cannot decode liqbot.Trade: field event_id unreadable in {cut} bytes")


def test_trailing_bytes_are_an_error(real_records: dict[str, AvroRecord]) -> None:
    schema = schemas.load("liqbot.Trade")
    body = encode_body(schema, _trade(real_records).to_avro())
    with pytest.raises(SerdeError, match=rf"2 bytes left after the last field \({len(body) + 2} bytes in all\)"):
        decode_body(schema, body + b"\x00\x00")


def test_old_writer_is_resolved_to_the_current_reader() -> None:
    """Data written before a nullable field existed decodes with that field's default."""
    current = schemas.load("liqbot.DeadLetter")
    old_raw = copy.deepcopy(current.raw)
    old_raw["fields"] = [f for f in old_raw["fields"] if f["name"] != "ts_recv_ns"]
    old = schemas.from_text(json.dumps(old_raw))
    letter = DeadLetter(source="s", stage="parse", error="e", error_type="ParseError", raw=b"\xff",
                        key=None, partition=None, offset=None, ts_recv_ns=None, ts_dead_ns=1)
    datum = letter.to_avro()
    del datum["ts_recv_ns"]
    assert DeadLetter.from_avro(decode_body(old, encode_body(old, datum), current)) == letter
