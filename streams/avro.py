"""Avro binary bodies for one schema, with errors that name the schema and the field."""

from __future__ import annotations

import io
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

from liqbot.errors import LiqbotError
from schemas import AvroSchema

__all__ = ["SerdeError", "decode_body", "encode_body"]


class SerdeError(LiqbotError):
    """A record that does not fit its schema, or bytes that are not a record of it."""

    def __init__(self, message: str, *, schema: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.schema = schema
        self.field = field


def encode_body(schema: AvroSchema, datum: dict[str, Any]) -> bytes:
    """Avro binary encoding of `datum`; strict: unknown or missing fields are errors."""
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, schema.parsed, datum, strict=True)
    except Exception as exc:  # fastavro raises TypeError, ValueError, KeyError, ...
        raise _encode_error(schema, datum, exc) from exc
    return out.getvalue()


def decode_body(writer: AvroSchema, payload: bytes, reader: AvroSchema | None = None) -> dict[str, Any]:
    """Decode a body written with `writer`, resolved to `reader` when given; trailing bytes are an error."""
    buf = io.BytesIO(payload)
    try:
        reader_parsed = reader.parsed if reader is not None and reader is not writer else None
        datum = fastavro.schemaless_reader(buf, writer.parsed, reader_parsed)
    except Exception as exc:
        raise _decode_error(writer, payload, exc) from exc
    if buf.tell() != len(payload):
        raise SerdeError(
            f"cannot decode {writer.name}: {len(payload) - buf.tell()} bytes left after the last field "
            f"({len(payload)} bytes in all); the payload is not one {writer.name} record",
            schema=writer.name,
        )
    if not isinstance(datum, dict):
        raise SerdeError(f"cannot decode {writer.name}: not a record", schema=writer.name)
    return datum


def _encode_error(schema: AvroSchema, datum: dict[str, Any], exc: Exception) -> SerdeError:
    try:
        validate(datum, schema.parsed, raise_errors=True, strict=True)
    except ValidationError as verr:
        first = verr.errors[0]
        located = str(first.field).removeprefix(schema.name + ".")
        return SerdeError(
            f"cannot encode {schema.name}: field {located}: value {first.datum!r} "
            f"({type(first.datum).__name__}) does not match {_short(first.schema)}",
            schema=schema.name,
            field=located,
        )
    except Exception:  # validate itself chokes on some inputs; the encoder's message stands
        pass
    field = _field_in_message(schema, str(exc))
    return SerdeError(f"cannot encode {schema.name}: {exc}", schema=schema.name, field=field)


def _decode_error(writer: AvroSchema, payload: bytes, exc: Exception) -> SerdeError:
    field = _first_unreadable_field(writer, payload)
    where = f"field {field}" if field else "record"
    return SerdeError(
        f"cannot decode {writer.name}: {where} unreadable in {len(payload)} bytes "
        f"({type(exc).__name__}: {exc})",
        schema=writer.name,
        field=field,
    )


def _first_unreadable_field(writer: AvroSchema, payload: bytes) -> str | None:
    """Avro binary is sequential: the shortest prefix of fields that fails to read ends at the culprit."""
    fields = writer.raw.get("fields", [])
    for k in range(1, len(fields) + 1):
        prefix = {**writer.raw, "fields": fields[:k]}
        try:
            fastavro.schemaless_reader(io.BytesIO(payload), fastavro.parse_schema(prefix, named_schemas={}))
        except Exception:
            return str(fields[k - 1]["name"])
    return None


def _field_in_message(schema: AvroSchema, message: str) -> str | None:
    names = [f["name"] for f in schema.raw.get("fields", [])]
    return next((n for n in names if f"field {n}" in message or message.endswith(n)), None)


def _short(schema: Any) -> str:
    if isinstance(schema, dict) and schema.get("type") in ("enum", "record", "fixed"):
        return f"{schema['type']} {schema['name']}"
    if isinstance(schema, dict):
        return str(schema.get("type"))
    return str(schema)
