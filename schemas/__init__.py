"""The Avro contract: one `.avsc` per record kind, loaded and fingerprinted here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

__all__ = ["RELEASED_DIR", "SCHEMA_DIR", "AvroSchema", "from_text", "load", "load_all", "load_dir"]

SCHEMA_DIR = Path(__file__).resolve().parent
RELEASED_DIR = SCHEMA_DIR / "released"


@dataclass(frozen=True)
class AvroSchema:
    """A parsed schema with the text it came from and its CRC-64-AVRO fingerprint."""

    name: str
    path: Path
    text: str
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes

    @property
    def canonical(self) -> str:
        return str(to_parsing_canonical_form(self.raw))


def from_text(text: str, path: Path = Path("<text>")) -> AvroSchema:
    """Parse one schema's JSON text (from a file or a registry)."""
    raw = json.loads(text)
    # Each file is parsed on its own (its own named types), so every schema is
    # self-contained for the registry, ClickHouse and kcat alike.
    parsed = fastavro.parse_schema(raw, named_schemas={}, _write_hint=True)
    canonical = to_parsing_canonical_form(raw)
    return AvroSchema(
        name=f"{raw['namespace']}.{raw['name']}",
        path=path,
        text=text,
        raw=raw,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


def load_dir(directory: Path) -> dict[str, AvroSchema]:
    """Every `.avsc` in a directory, by full record name."""
    schemas = [from_text(p.read_text(), p) for p in sorted(directory.glob("*.avsc"))]
    return {s.name: s for s in schemas}


@cache
def load_all() -> dict[str, AvroSchema]:
    """The current contract, by full record name (e.g. `liqbot.Trade`)."""
    return load_dir(SCHEMA_DIR)


def load(name: str) -> AvroSchema:
    """One schema of the current contract by full name; the error lists the known names."""
    schemas = load_all()
    if name not in schemas:
        raise KeyError(f"no schema {name!r} in {SCHEMA_DIR}; known: {', '.join(sorted(schemas))}")
    return schemas[name]
