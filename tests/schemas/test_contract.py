"""The Avro contract: one schema per record kind, typed mirrors that match it, exact decimals at the edges."""

from __future__ import annotations

import dataclasses
import typing

import pytest

import schemas
from schemas.records import RECORD_TYPES

MARKET = ["liqbot.Trade", "liqbot.Liquidation", "liqbot.BookUpdate", "liqbot.TopOfBook", "liqbot.Ticker",
          "liqbot.Instrument", "liqbot.OpenInterest", "liqbot.FundingRate"]
ENVELOPE = ["venue", "symbol", "event_id", "ts_event_ns", "ts_exchange_ns", "ts_recv_ns"]


def test_one_schema_per_record_kind_in_one_namespace() -> None:
    loaded = schemas.load_all()
    assert sorted(loaded) == sorted([
        *MARKET, "liqbot.FeatureVector", "liqbot.Prediction", "liqbot.OrderIntent", "liqbot.OrderCancel",
        "liqbot.OrderEvent",
        "liqbot.Position", "liqbot.DeadLetter", "liqbot.ControlCommand",
    ])
    assert {s.raw["namespace"] for s in loaded.values()} == {"liqbot"}
    assert sorted(RECORD_TYPES) == sorted(loaded)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_python_record_mirrors_its_schema(name: str) -> None:
    """Same fields, same order, optional exactly where the schema has a null branch, same defaults."""
    schema = schemas.load(name).raw
    cls = RECORD_TYPES[name]
    py_fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    assert [f.name for f in py_fields] == [f["name"] for f in schema["fields"]]
    hints = typing.get_type_hints(cls)
    for field, avro in zip(py_fields, schema["fields"], strict=True):
        nullable = isinstance(avro["type"], list) and "null" in avro["type"]
        assert (type(None) in typing.get_args(hints[field.name])) == nullable, field.name
        if "default" in avro and field.default is not dataclasses.MISSING:
            assert field.default == avro["default"], field.name


@pytest.mark.parametrize("name", MARKET)
def test_market_records_carry_venue_symbol_three_times_and_an_id(name: str) -> None:
    fields = {f["name"]: f["type"] for f in schemas.load(name).raw["fields"]}
    for envelope in ENVELOPE:
        assert envelope in fields, f"{name} lacks {envelope}"
    assert [fields[t] for t in ENVELOPE[3:]] == ["long", "long", "long"]


@pytest.mark.parametrize("name", MARKET)
def test_prices_and_sizes_are_exact_decimal_text(name: str) -> None:
    """Every price or size crossing the venue edge is a string (the venue's text), never a float."""
    for field in schemas.load(name).raw["fields"]:
        n = field["name"]
        if n in ("mid", "microprice"):
            assert field["type"] == "double" and "float64" in field["doc"]  # derived, and documented as such
        elif n.endswith(("price", "size", "_qty", "_step", "open_interest", "funding_rate")):
            assert field["type"] in ("string", ["null", "string"]), n


def test_book_levels_are_decimal_text() -> None:
    bids = next(f for f in schemas.load("liqbot.BookUpdate").raw["fields"] if f["name"] == "bids")
    assert [f["type"] for f in bids["type"]["items"]["fields"]] == ["string", "string"]
