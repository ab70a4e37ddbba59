"""The market history read back from ClickHouse as the records the agents were fed, one source at a time.

A source is one topic's partition, as the agents' merge sees it (`agents/partitions.py`: one merge per partition,
its topics ranked by the chain's inputs). Each is read in Kafka offset order, in Arrow batches of at most
`batch_rows` rows (keyset pages: `_offset` past the last one read), so memory holds a batch per source whatever
the range. Decimals come back as Decimal(38, 18): they are given to the records as their shortest exact text
("65000.1", not the venue's "65000.10", which ClickHouse does not keep), so every figure computed from them is
the same and texts may lose trailing zeros.

The input hash is ClickHouse's: each row's sipHash128 over its columns, computed by the query, one sha256 per source
over those in offset order, then one over the sources (`input_hash`). No Python per row, and batch sizes change
nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from liqbot.errors import LiqbotError
from schemas.records import RECORD_TYPES, AvroRecord
from streams.history.columns import Column, columns_for
from streams.topics import TOPICS, TopicSpec

__all__ = ["STATE_TOPICS", "HistoryRange", "HistoryReader", "Source", "decimal_text", "iso", "records_of"]

_SPECS = {spec.name: spec for spec in TOPICS}
# Read from the start of the history up to the range's end: the live agents hold this state from before any
# range (a compacted topic read from its beginning), and decide refuses every order without an instrument.
STATE_TOPICS = frozenset({"market.instruments"})
_LISTED = 30  # symbols an error names at most

_WHERE = """_topic = {topic:String} AND has({symbols:Array(String)}, symbol)
  AND ts_event_ns >= fromUnixTimestamp64Nano({from_ns:Int64}, 'UTC')
  AND ts_event_ns < fromUnixTimestamp64Nano({to_ns:Int64}, 'UTC')"""


@dataclass(frozen=True, kw_only=True)
class HistoryRange:
    """What a replay reads: the symbols' records with from_ns <= event time < to_ns under one topic prefix."""

    namespace: str  # the topic prefix the history came through: "" for the live topics, "run-....": a pipeline's
    from_ns: int
    to_ns: int
    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.from_ns >= self.to_ns:
            raise LiqbotError("--from must be before --to")
        if not self.symbols:
            raise LiqbotError("--symbols: give at least one, e.g. BTCUSDT,ETHUSDT")


@dataclass(frozen=True, slots=True)
class Source:
    """One topic's partition in the range, and how many rows it holds there."""

    spec: TopicSpec
    partition: int
    rows: int


@dataclass
class HistoryReader:
    """Sources and their records for `topics` (registry names, in tie-break order) over `span`."""

    client: Client
    span: HistoryRange
    topics: Sequence[str]
    batch_rows: int = 100_000
    batches: dict[str, int] = field(default_factory=dict)  # Arrow batches read, by table (bounded memory, tested)
    symbols_found: set[str] = field(default_factory=set)  # of the range's symbols, those `sources` found rows of
    _digests: dict[tuple[str, int], Any] = field(default_factory=dict)  # (topic, partition) -> sha256 of row hashes

    def sources(self) -> list[Source]:
        """Every (topic, partition) with rows in the range: partition-major, topics in their tie-break order."""
        found: dict[tuple[int, str], int] = {}
        for name in self.topics:
            spec = _SPECS[name]
            rows = self.client.query(f"SELECT _partition, symbol, count() FROM {{table:Identifier}} WHERE {_WHERE} "
                                     "GROUP BY _partition, symbol", parameters=self._params(spec)).result_rows
            for partition, symbol, n in rows:
                found[(int(partition), name)] = found.get((int(partition), name), 0) + int(n)
                self.symbols_found.add(str(symbol))
        rank = {name: i for i, name in enumerate(self.topics)}
        return [Source(_SPECS[name], partition, n)
                for (partition, name), n in sorted(found.items(), key=lambda kv: (kv[0][0], rank[kv[0][1]]))]

    def refuse_missing(self, missing: Sequence[str]) -> None:
        """Raises, saying what to do, for symbols the history never saw or a range with none of them; returns for
        symbols it holds only at other times while others fill the range (the range has none of theirs)."""
        held = self._spans()
        namespace = self.span.namespace
        if not held:
            prefixes = ", ".join(f"'{p}'" for p in self._namespaces()) or "none: the history is empty"
            raise LiqbotError(f"the history holds no market records under the topic prefix '{namespace}' "
                              f"(--namespace); prefixes that hold some: {prefixes}. Load history with `liqbot sink` "
                              "or `liqbot pipeline`")
        unknown = [s for s in missing if s not in held]
        if unknown:
            known = ", ".join(sorted(held)[:_LISTED]) + (", ..." if len(held) > _LISTED else "")
            raise LiqbotError(f"unknown symbol {', '.join(unknown)}: the history under the topic prefix "
                              f"'{namespace}' holds {known}")
        if len(missing) == len(self.span.symbols):
            spans = "; ".join(f"{s} from {iso(held[s][0])} to {iso(held[s][1])}" for s in missing)
            raise LiqbotError(f"no market records between {iso(self.span.from_ns)} and {iso(self.span.to_ns)} for "
                              f"{','.join(missing)} (the history holds {spans}); load history with `liqbot sink` "
                              "or `liqbot pipeline`")

    def _spans(self) -> dict[str, tuple[int, int]]:
        """Each symbol under the namespace: its first and last market record's event time (ns)."""
        union = " UNION ALL ".join(f"SELECT symbol, ts_event_ns FROM {_SPECS[name].table} WHERE _topic = "
                                   f"{{t{i}:String}}" for i, name in enumerate(self.topics))
        params = {f"t{i}": self.span.namespace + name for i, name in enumerate(self.topics)}
        rows = self.client.query(f"SELECT symbol, toUnixTimestamp64Nano(min(ts_event_ns)), "
                                 f"toUnixTimestamp64Nano(max(ts_event_ns)) FROM ({union}) GROUP BY symbol",
                                 parameters=params).result_rows
        return {str(symbol): (int(first), int(last)) for symbol, first, last in rows}

    def _namespaces(self) -> list[str]:
        """The topic prefixes the history holds market records under."""
        found: set[str] = set()
        for name in self.topics:
            topics = self.client.query(f"SELECT DISTINCT _topic FROM {_SPECS[name].table}").result_rows
            found |= {str(t)[:-len(name)] for (t,) in topics if str(t).endswith(name)}
        return sorted(found)

    def records(self, source: Source) -> Iterator[tuple[int, int, AvroRecord]]:
        """The source's records in offset order as (event time ns, offset, record), a batch at a time."""
        digest = self._digests.setdefault((source.spec.name, source.partition), hashlib.sha256())
        for batch in self._batches(source):
            hashes = batch.column("_row_hash").combine_chunks()  # FixedString(16): one buffer of the rows' hashes
            width = hashes.type.byte_width
            digest.update(hashes.buffers()[1][hashes.offset * width:(hashes.offset + len(hashes)) * width])
            times = batch.column("ts_event_ns").combine_chunks().cast(pa.int64()).to_pylist()
            offsets = batch.column("_offset").to_pylist()
            yield from zip(times, offsets, records_of(batch, source.spec.schema), strict=True)

    def _batches(self, source: Source) -> Iterator[pa.Table]:
        names = ", ".join(f"`{c.name}`" for c in columns_for(source.spec.schema))
        sql = (f"SELECT {names}, _offset, sipHash128(tuple({names})) AS _row_hash FROM {{table:Identifier}} "
               f"WHERE {_WHERE} AND _partition = {{partition:Int32}} "
               "AND _offset > {after:Int64} ORDER BY _offset LIMIT {rows:UInt64}")
        after = -1
        while True:
            params = {**self._params(source.spec), "partition": source.partition, "after": after,
                      "rows": self.batch_rows}
            batch = self.client.query_arrow(sql, parameters=params)
            if batch.num_rows == 0:
                return
            self.batches[source.spec.table] = self.batches.get(source.spec.table, 0) + 1
            yield batch
            if batch.num_rows < self.batch_rows:
                return
            after = batch.column("_offset")[-1].as_py()

    def input_hash(self) -> str:
        """sha256 over every source read (topic, partition, the sha256 of its rows' hashes in offset order)."""
        digest = hashlib.sha256()
        for (topic, partition), rows in sorted(self._digests.items()):
            digest.update(f"{topic}:{partition}:{rows.hexdigest()}\n".encode())
        return digest.hexdigest()

    def _params(self, spec: TopicSpec) -> dict[str, Any]:
        span = self.span
        return {"table": spec.table, "topic": span.namespace + spec.name, "symbols": list(span.symbols),
                "from_ns": 0 if spec.name in STATE_TOPICS else span.from_ns, "to_ns": span.to_ns}


def iso(ts_ns: int) -> str:
    """An event time for people: 2024-08-08T12:00:00.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ns // 10**9)) + f".{ts_ns % 10**9 // 10**6:03d}Z"


def decimal_text(value: Decimal) -> str:
    """The shortest exact text of a decimal: 65000.1, 100, 0 (never an exponent)."""
    return format(value.normalize(), "f")


def _values(array: pa.Array, column: Column) -> list[Any]:
    if column.kind == "decimal":
        return [None if v is None else decimal_text(v) for v in array.to_pylist()]
    if column.kind == "time":
        return list(array.cast(pa.int64()).to_pylist())
    return list(array.to_pylist())


def _column(array: pa.Array, column: Column) -> list[Any]:
    """A column's Python values; an array column's one list per row."""
    if not column.array:
        return _values(array, column)
    values = _values(array.flatten(), column)
    offsets = array.offsets.to_pylist()
    return [values[a - offsets[0]:b - offsets[0]] for a, b in pairwise(offsets)]


def records_of(table: pa.Table, schema: str) -> list[AvroRecord]:
    """The records of `schema` in the rows of `table`, whose columns are named as `columns_for(schema)`."""
    columns = columns_for(schema)
    data = {c.name: _column(table.column(c.name).combine_chunks(), c) for c in columns}
    fields: dict[str, list[Any]] = {}
    nested: dict[str, list[Column]] = {}
    for c in columns:
        if len(c.path) == 1:
            fields[c.name] = data[c.name]
        else:
            nested.setdefault(c.path[0], []).append(c)
    for name, subs in nested.items():  # a Nested column set back to a record array: one list of dicts per row
        fields[name] = [[dict(zip([s.path[1] for s in subs], level, strict=True)) for level in zip(*row, strict=True)]
                        for row in zip(*(data[s.name] for s in subs), strict=True)]
    cls = RECORD_TYPES[schema]
    names = list(fields)
    return [cls.from_avro(dict(zip(names, row, strict=True))) for row in zip(*fields.values(), strict=True)]
