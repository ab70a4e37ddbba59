"""Avro schemas to ClickHouse columns and Arrow types: the one mapping the tables, the decoders and tests share."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import pyarrow as pa

from schemas import AvroSchema, load_all

__all__ = [
    "DECIMAL_FIELDS", "DECIMAL_PRECISION", "DECIMAL_SCALE", "KAFKA_COLUMNS", "Column", "ColumnKind", "columns_for",
    "columns_of",
]

# Venue decimals are text on the wire, kept exact. Decimal(38, 18) holds all the real captures carry: Bybit lists
# tick sizes of 1e-13 (BABYDOGEUSDT) and max order sizes such as 1.0977000000000001 (16 places, a float printed).
# Products need `multiplyDecimal(price, size, 18)` or floats: plain `*` adds the scales (36) and overflows.
DECIMAL_PRECISION = 38
DECIMAL_SCALE = 18

# String fields that carry venue decimals (price, size, rates); every other string stays a string.
DECIMAL_FIELDS = frozenset({
    "price", "size", "bankruptcy_price", "funding_rate", "open_interest", "open_interest_value",
    "tick_size", "qty_step", "min_order_qty", "max_order_qty", "min_notional", "max_leverage",
    "last_price", "mark_price", "index_price", "bid1_price", "ask1_price", "volume_24h", "turnover_24h",
    "bid_price", "bid_size", "ask_price", "ask_size", "filled_size", "last_fill_price", "last_fill_size", "fee",
    "take_profit_price", "stop_loss_price", "entry_price",
})

ColumnKind = Literal["string", "enum", "decimal", "time", "long", "int", "double", "bool", "bytes"]

# Strings that repeat a few values per table (venue, symbol, feed, ...) are dictionary-encoded.
_LOW_CARDINALITY = frozenset({
    "venue", "symbol", "feed", "feature_spec", "model_version", "interval", "status", "contract_type", "base_coin",
    "quote_coin", "source", "stage", "error_type", "tick_direction", "reason", "scope", "operator",
})

_CH_SCALAR = {
    "string": "String", "bytes": "String", "long": "Int64", "int": "Int32", "double": "Float64", "bool": "Bool",
    "decimal": f"Decimal({DECIMAL_PRECISION}, {DECIMAL_SCALE})", "time": "DateTime64(9, 'UTC')",
    "enum": "LowCardinality(String)",
}

_ARROW_SCALAR: dict[str, pa.DataType] = {
    "string": pa.string(), "enum": pa.string(), "bytes": pa.binary(), "long": pa.int64(), "int": pa.int32(),
    "double": pa.float64(), "bool": pa.bool_(), "decimal": pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
    "time": pa.timestamp("ns", tz="UTC"),
}


@dataclass(frozen=True, slots=True)
class Column:
    """One ClickHouse column from one Avro field (`path` has two parts for a field of a nested record array)."""

    name: str
    path: tuple[str, ...]
    kind: ColumnKind
    nullable: bool
    array: bool

    @property
    def clickhouse_type(self) -> str:
        scalar = _CH_SCALAR[self.kind]
        if self.kind == "string" and self.path[-1] in _LOW_CARDINALITY:
            scalar = "LowCardinality(String)"
        if self.nullable:
            low = scalar == "LowCardinality(String)"
            scalar = "LowCardinality(Nullable(String))" if low else f"Nullable({scalar})"
        return f"Array({scalar})" if self.array else scalar

    @property
    def arrow_type(self) -> pa.DataType:
        scalar = _ARROW_SCALAR[self.kind]
        return pa.list_(scalar) if self.array else scalar


def _kind(name: str, avro_type: Any) -> ColumnKind:
    if isinstance(avro_type, dict):
        if avro_type["type"] == "enum":
            return "enum"
        return _kind(name, avro_type["type"])
    if avro_type == "string":
        return "decimal" if name in DECIMAL_FIELDS else "string"
    if avro_type == "long":
        return "time" if name.endswith("_ns") else "long"
    kinds: dict[str, ColumnKind] = {"int": "int", "double": "double", "boolean": "bool", "bytes": "bytes"}
    if avro_type not in kinds:
        raise ValueError(f"field {name}: Avro type {avro_type!r} has no ClickHouse column mapping yet")
    return kinds[avro_type]


def _field_columns(field: dict[str, Any], named: dict[str, Any]) -> list[Column]:
    name, avro_type = field["name"], field["type"]
    nullable = isinstance(avro_type, list)
    if nullable:
        branches = [t for t in avro_type if t != "null"]
        if len(branches) != 1 or "null" not in avro_type:
            raise ValueError(f"field {name}: only unions of null and one type map to a Nullable column")
        avro_type = branches[0]
    if isinstance(avro_type, dict) and avro_type["type"] == "array":
        items = avro_type["items"]
        if isinstance(items, str):
            items = named.get(items, items)  # a record named by an earlier field
        if isinstance(items, dict) and items["type"] == "record":
            named[items["name"]] = items
            # A record array becomes Nested: one array column per field, `bids.price`, `bids.size`.
            return [Column(f"{name}.{sub['name']}", (name, sub["name"]), _kind(sub["name"], sub["type"]), False, True)
                    for sub in items["fields"]]
        return [Column(name, (name,), _kind(name, items), False, True)]
    return [Column(name, (name,), _kind(name, avro_type), nullable, False)]


def columns_of(raw: dict[str, Any]) -> tuple[Column, ...]:
    """The columns of a record schema (parsed `.avsc` JSON) in field order."""
    named: dict[str, Any] = {}
    return tuple(c for f in raw["fields"] for c in _field_columns(f, named))


@cache
def columns_for(schema: str) -> tuple[Column, ...]:
    """The columns of the current `.avsc` of `schema` (e.g. `liqbot.Trade`)."""
    avro: AvroSchema = load_all()[schema]
    return columns_of(avro.raw)


# Where each row came from in Kafka, and when the sink wrote it (`_inserted`, the server's DEFAULT: freshness).
KAFKA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_topic", "LowCardinality(String)"),
    ("_topic_id", "LowCardinality(String)"),
    ("_partition", "Int32"),
    ("_offset", "Int64"),
    ("_kafka_ts", "DateTime64(3, 'UTC')"),
    ("_schema_id", "UInt64"),
    ("_inserted", "DateTime64(6, 'UTC')"),
)

