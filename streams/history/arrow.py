"""Avro payloads to Arrow columns for one table; a value that does not fit its column rejects its row, never rounds."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import pyarrow as pa
from liqbot_core import ColumnDecoder

from schemas import AvroSchema, load_all
from streams.avro import SerdeError, decode_body
from streams.history.columns import DECIMAL_PRECISION, DECIMAL_SCALE, Column, columns_for

__all__ = ["ColumnValueError", "DecodedBatch", "check_decimal", "check_time", "decode_batch", "decode_batch_python"]

_DECIMAL = re.compile(r"[+-]?([0-9]*)(?:\.([0-9]*))?")
_INTEGER_DIGITS = DECIMAL_PRECISION - DECIMAL_SCALE
# DateTime64(9)'s range: 1900-01-01 to the end of int64 nanoseconds (2262-04-11).
TIME_MIN_NS = -2_208_988_800 * 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class ColumnValueError(SerdeError):
    """A decoded value that its ClickHouse column cannot hold exactly."""


def check_decimal(path: str, text: str) -> Decimal:
    """The exact Decimal of venue text, or an error naming the field when Decimal(38, 18) cannot hold it."""
    match = _DECIMAL.fullmatch(text)
    if match is None or not (match.group(1) or match.group(2)):
        raise ColumnValueError(f"field {path}: '{text}' is not a decimal number", field=path)
    integer, fraction = match.group(1).lstrip("0"), (match.group(2) or "").rstrip("0")
    if len(fraction) > DECIMAL_SCALE:
        raise ColumnValueError(f"field {path}: '{text}' has more than {DECIMAL_SCALE} decimal places; "
                          f"Decimal({DECIMAL_PRECISION}, {DECIMAL_SCALE}) would round it", field=path)
    if len(integer) > _INTEGER_DIGITS:
        raise ColumnValueError(f"field {path}: '{text}' has more than {_INTEGER_DIGITS} integer digits; "
                          f"Decimal({DECIMAL_PRECISION}, {DECIMAL_SCALE}) cannot hold it", field=path)
    return Decimal(text)


def check_time(path: str, ns: int) -> int:
    """`ns` when DateTime64(9) can hold it (Avro's long already bounds it above)."""
    if ns < TIME_MIN_NS:
        raise ColumnValueError(f"field {path}: {ns} ns is outside DateTime64(9)'s range 1900-01-01 .. 2262-04-11",
                          field=path)
    return ns


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """The good rows as Arrow columns (in `columns_for` order) and, per bad row, its index and reason."""

    columns: list[pa.Array]
    good: list[int]
    bad: list[tuple[int, str]]


def _value(column: Column, path: str, value: Any) -> Any:
    if value is None:
        return None
    if column.kind == "decimal":
        return check_decimal(path, value)
    if column.kind == "time":
        return check_time(path, value)
    if column.kind == "int" and not _INT32_MIN <= value <= _INT32_MAX:
        raise ColumnValueError(f"field {path}: {value} is outside Int32's range", field=path)
    return value


def _row(columns: Sequence[Column], datum: dict[str, Any]) -> list[Any]:
    """One row's column values, checked in the order Avro lays them out (the compiled decoder's order)."""
    out: list[Any] = []
    i = 0
    while i < len(columns):
        column, name = columns[i], columns[i].path[0]
        if len(column.path) == 2:
            group = [c for c in columns[i:] if c.path[0] == name]
            lists: list[list[Any]] = [[] for _ in group]
            for item in datum[name]:
                for values, sub in zip(lists, group, strict=True):
                    values.append(_value(sub, f"{name}.{sub.path[1]}", item[sub.path[1]]))
            out.extend(lists)
            i += len(group)
            continue
        if column.array:
            out.append([_value(column, name, item) for item in datum[name]])
        else:
            out.append(_value(column, name, datum[name]))
        i += 1
    return out


def decode_batch_python(writer: AvroSchema, payloads: Sequence[bytes], body_offset: int) -> DecodedBatch:
    """The reference path (fastavro, any writer schema resolved to the current one); the compiled one must agree."""
    current = load_all()[writer.name]
    columns = columns_for(writer.name)
    rows: list[list[Any]] = []
    good: list[int] = []
    bad: list[tuple[int, str]] = []
    for index, payload in enumerate(payloads):
        try:
            datum = decode_body(writer, payload[body_offset:], current)
            rows.append(_row(columns, datum))
        except SerdeError as exc:
            bad.append((index, str(exc)))
            continue
        good.append(index)
    arrays = [pa.array([r[i] for r in rows], type=c.arrow_type) for i, c in enumerate(columns)]
    return DecodedBatch(arrays, good, bad)


@cache
def _compiled(schema: str) -> ColumnDecoder:
    columns = columns_for(schema)
    decimals = [".".join(c.path) for c in columns if c.kind == "decimal"]
    times = [".".join(c.path) for c in columns if c.kind == "time"]
    return ColumnDecoder(load_all()[schema].text, decimals, times, DECIMAL_SCALE, TIME_MIN_NS)


def _array(column: Column, length: int, null_count: int, buffers: list[bytes | None], child: Any) -> pa.Array:
    arrow = column.arrow_type
    wrapped = [None if b is None else pa.py_buffer(b) for b in buffers]
    if child is None:
        return pa.Array.from_buffers(arrow, length, wrapped, null_count)
    child_length, child_nulls, child_buffers, _ = child
    item = pa.Array.from_buffers(arrow.value_type, child_length,
                                 [None if b is None else pa.py_buffer(b) for b in child_buffers], child_nulls)
    return pa.Array.from_buffers(arrow, length, wrapped, null_count, children=[item])


def decode_batch(writer: AvroSchema, payloads: Sequence[bytes], body_offset: int) -> DecodedBatch:
    """Compiled when `writer` is the current schema (core/src/columns.rs); else the reference path.

    A row the compiled decoder cannot read is read again by fastavro, whose message names the field."""
    current = load_all()[writer.name]
    if writer.fingerprint != current.fingerprint:
        return decode_batch_python(writer, payloads, body_offset)
    raw_columns, bad = _compiled(writer.name).decode(list(payloads), body_offset)
    arrays = [_array(c, *raw) for c, raw in zip(columns_for(writer.name), raw_columns, strict=True)]
    bad_rows = {i for i, _ in bad}
    reasons = [(i, msg if not msg.startswith("malformed") else _reason(writer, payloads[i], body_offset, msg))
               for i, msg in bad]
    good = [i for i in range(len(payloads)) if i not in bad_rows]
    return DecodedBatch(arrays, good, reasons)


def _reason(writer: AvroSchema, payload: bytes, body_offset: int, fallback: str) -> str:
    try:
        decode_body(writer, payload[body_offset:], None)
    except SerdeError as exc:
        return str(exc)
    return fallback

