"""Every schema change stays readable both ways against the committed snapshot of released schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import schemas
from schemas.compatibility import full_incompatibilities, incompatibilities

RELEASED = schemas.load_dir(schemas.RELEASED_DIR)


def test_released_snapshot_is_not_empty_and_nothing_was_removed() -> None:
    assert len(RELEASED) == 16
    assert set(RELEASED) <= set(schemas.load_all())


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_current_schema_is_fully_compatible_with_released(name: str) -> None:
    assert full_incompatibilities(schemas.load(name).raw, RELEASED[name].raw) == []


def _trade() -> dict[str, Any]:
    return copy.deepcopy(schemas.load("liqbot.Trade").raw)


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_new_field_without_default_breaks_new_readers_of_old_data() -> None:
    new = _trade()
    new["fields"].append({"name": "venue_flags", "type": "int"})
    assert full_incompatibilities(new, _trade()) == [
        "new reader, old data: Trade.venue_flags: reader field is missing from the writer and has no default"
    ]


def test_new_nullable_field_with_default_is_compatible() -> None:
    new = _trade()
    new["fields"].append({"name": "venue_flags", "type": ["null", "int"], "default": None})
    assert full_incompatibilities(new, _trade()) == []


def test_removed_field_without_default_breaks_old_readers() -> None:
    new = _trade()
    new["fields"] = [f for f in new["fields"] if f["name"] != "price"]
    assert full_incompatibilities(new, _trade()) == [
        "old reader, new data: Trade.price: reader field is missing from the writer and has no default"
    ]


def test_new_enum_symbol_breaks_old_readers_without_enum_default() -> None:
    new = _trade()
    _field(new, "taker_side")["type"]["symbols"].append("UNKNOWN")
    assert full_incompatibilities(new, _trade()) == [
        "old reader, new data: Trade.taker_side: writer enum symbols ['UNKNOWN'] unknown to the reader, "
        "which has no default"
    ]


def test_enum_with_default_accepts_new_symbols() -> None:
    book = copy.deepcopy(schemas.load("liqbot.BookUpdate").raw)
    new = copy.deepcopy(book)
    _field(new, "update_type")["type"]["symbols"].append("CHECKSUM")
    assert incompatibilities(book, new) == []


def test_narrowing_a_type_is_caught_and_widening_only_one_way() -> None:
    narrowed = _trade()
    _field(narrowed, "ts_event_ns")["type"] = "int"
    assert "new reader, old data: Trade.ts_event_ns: writer long cannot be read as int" in \
        full_incompatibilities(narrowed, _trade())
    assert incompatibilities(reader=_trade(), writer=narrowed) == []  # int data is readable as long


def test_changed_nested_record_field_is_located() -> None:
    book = copy.deepcopy(schemas.load("liqbot.BookUpdate").raw)
    new = copy.deepcopy(book)
    _field(new, "bids")["type"]["items"]["fields"][1]["type"] = "double"
    assert "old reader, new data: BookUpdate.bids[].size: writer double cannot be read as string" in \
        full_incompatibilities(new, book)


def test_renamed_record_is_incompatible() -> None:
    new = _trade()
    new["name"] = "Fill"
    problems = full_incompatibilities(new, _trade())
    assert problems and all("named type" in p for p in problems)
