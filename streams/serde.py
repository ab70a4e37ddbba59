"""Wire framing of Avro records: one interface, two framings (docs/serde.md says which and why)."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

from liqbot_core import MarketDecoder, RecordDecoder

from liqbot.config import SerdeSettings
from schemas import RELEASED_DIR, AvroSchema, from_text, load_all, load_dir
from schemas.records import RECORD_TYPES, ArmPrediction, AvroRecord, BookLevel
from streams.avro import SerdeError, decode_body, encode_body
from streams.registry import RegistryClient, RegistryError

__all__ = ["ConfluentSerde", "Framed", "Serde", "SerdeError", "SingleObjectSerde", "make_serde", "market_decoder"]

_CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_MAGIC = b"\xc3\x01"


class Serde(Protocol):
    """Encodes a typed record for a topic and decodes a payload back to the current record type."""

    def encode(self, topic: str, record: AvroRecord) -> bytes: ...

    def header(self, topic: str, schema: str) -> bytes:
        """The bytes before an Avro body of `schema` on `topic` (for bodies the compiled path encoded)."""
        ...

    def decode(self, topic: str, payload: bytes) -> AvroRecord: ...

    def writer(self, topic: str, payload: bytes) -> Framed:
        """The schema a payload was written with and where its body starts, without decoding it."""
        ...


@dataclass(frozen=True, slots=True)
class Framed:
    """A payload's framing: the writer's schema, its schema id (registry id or fingerprint), the body offset."""

    schema: AvroSchema
    schema_id: int
    body_offset: int


def _to_record(writer: AvroSchema, payload: bytes, body_offset: int) -> AvroRecord:
    current = load_all().get(writer.name)
    if current is None:
        raise SerdeError(f"payload written with {writer.name}, which this version does not know", schema=writer.name)
    if writer.fingerprint == current.fingerprint:
        writer = current  # the same schema: fastavro need not resolve one against the other
    datum = decode_body(writer, payload[body_offset:], current)
    try:
        return RECORD_TYPES[current.name].from_avro(datum)
    except TypeError as exc:
        raise SerdeError(f"cannot build {current.name} from decoded fields: {exc}", schema=current.name) from exc


def _decode(decoder: RecordDecoder | None, writer: AvroSchema, payload: bytes, body_offset: int) -> AvroRecord:
    """The compiled decoder when there is one (the writer's schema is current); else, or on error, fastavro, whose
    error names the wrong field. Either way the outcome is the same (tests/streams/test_compiled_decode.py)."""
    if decoder is not None:
        try:
            record: AvroRecord = decoder.decode(payload, body_offset)
            return record
        except ValueError:
            pass
    return _to_record(writer, payload, body_offset)


def _compiled_for(writer: AvroSchema) -> RecordDecoder | None:
    """The compiled decoder (core/src/decode.rs) for bodies written with a current schema."""
    current = load_all().get(writer.name)
    return _compiled(current.name) if current is not None and current.fingerprint == writer.fingerprint else None


@cache
def _compiled(schema: str) -> RecordDecoder:
    return RecordDecoder(load_all()[schema].text, {**RECORD_TYPES, **_NESTED})


_NESTED = {"liqbot.BookLevel": BookLevel, "liqbot.ArmPrediction": ArmPrediction}


class ConfluentSerde:
    """Confluent wire format: magic 0, 4-byte big-endian schema id, Avro body; subjects `<topic>-value`."""

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self._headers: dict[tuple[str, str], bytes] = {}
        self._writers: dict[int, AvroSchema] = {}
        self._decoders: dict[int, RecordDecoder | None] = {}

    def encode(self, topic: str, record: AvroRecord) -> bytes:
        schema = load_all()[record.SCHEMA]
        return self.header(topic, schema.name) + encode_body(schema, record.to_avro())

    def header(self, topic: str, schema: str) -> bytes:
        key = (topic, schema)
        if key not in self._headers:
            current = load_all()[schema]
            schema_id = self.registry.register(f"{topic}-value", current.text)
            self._headers[key] = _CONFLUENT_MAGIC + struct.pack(">I", schema_id)
            if schema_id not in self._writers:  # the id names this very text: its records decode without a lookup
                self._writers[schema_id], self._decoders[schema_id] = current, _compiled_for(current)
        return self._headers[key]

    def decode(self, topic: str, payload: bytes) -> AvroRecord:
        framed = self.writer(topic, payload)
        return _decode(self._decoders[framed.schema_id], framed.schema, payload, 5)

    def writer(self, topic: str, payload: bytes) -> Framed:
        if len(payload) < 5 or payload[:1] != _CONFLUENT_MAGIC:
            raise SerdeError(
                f"topic {topic}: payload does not start with the Confluent magic byte 0 "
                f"(first bytes {payload[:5].hex() or 'none'})"
            )
        (schema_id,) = struct.unpack(">I", payload[1:5])
        return Framed(self._writer(schema_id), schema_id, 5)

    def _writer(self, schema_id: int) -> AvroSchema:
        if schema_id not in self._writers:
            try:
                text = self.registry.schema(schema_id)
            except RegistryError as exc:
                if exc.status != 404:
                    raise  # the registry is down: not the record's fault, so not a dead letter
                raise SerdeError(f"schema id {schema_id} is unknown to the registry", schema=None) from exc
            writer = self._writers[schema_id] = from_text(text, Path(f"<registry id {schema_id}>"))
            self._decoders[schema_id] = _compiled_for(writer)
        return self._writers[schema_id]


class SingleObjectSerde:
    """Avro single-object encoding: C3 01, 8-byte little-endian CRC-64-AVRO fingerprint, Avro body."""

    def __init__(self) -> None:
        known = list(load_dir(RELEASED_DIR).values()) + list(load_all().values())
        self._by_fingerprint = {s.fingerprint: s for s in known}
        self._decoders = {s.fingerprint: _compiled_for(s) for s in known}

    def encode(self, topic: str, record: AvroRecord) -> bytes:
        schema = load_all()[record.SCHEMA]
        return self.header(topic, schema.name) + encode_body(schema, record.to_avro())

    def header(self, topic: str, schema: str) -> bytes:
        return _SINGLE_OBJECT_MAGIC + load_all()[schema].fingerprint

    def decode(self, topic: str, payload: bytes) -> AvroRecord:
        writer = self.writer(topic, payload).schema
        return _decode(self._decoders[writer.fingerprint], writer, payload, 10)

    def writer(self, topic: str, payload: bytes) -> Framed:
        if len(payload) < 10 or payload[:2] != _SINGLE_OBJECT_MAGIC:
            raise SerdeError(
                f"topic {topic}: payload is not Avro single-object encoded (first bytes {payload[:10].hex() or 'none'})"
            )
        writer = self._by_fingerprint.get(payload[2:10])
        if writer is None:
            raise SerdeError(f"topic {topic}: unknown schema fingerprint {payload[2:10].hex()}")
        return Framed(writer, int.from_bytes(payload[2:10], "little"), 10)


def make_serde(settings: SerdeSettings) -> Serde:
    if settings.kind == "confluent":
        return ConfluentSerde(RegistryClient(settings.registry_url))
    return SingleObjectSerde()


def market_decoder(serde: Serde, topics: Mapping[str, str]) -> MarketDecoder:
    """Bodies of the current market schemas, behind the headers `serde` writes for them on `topics` (schema ->
    topic), straight into the feature engine's events (core/src/market.rs); any other payload is `decode`'s."""
    return MarketDecoder({serde.header(topic, schema): (schema, load_all()[schema].text)
                          for schema, topic in topics.items()})
