"""One topic's polled messages as one Arrow table for its ClickHouse table, and the rows that cannot go there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from confluent_kafka import Message

from streams.avro import SerdeError
from streams.history.arrow import decode_batch
from streams.history.columns import columns_for
from streams.serde import Framed, Serde

__all__ = ["Rejected", "TableBatch", "build"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that has no row: the reason goes to the dead-letter topic with its bytes."""

    message: Message
    reason: str
    error_type: str


@dataclass(frozen=True, slots=True)
class TableBatch:
    """The rows of one insert; its `token` names their offsets, so a retried insert of it is deduplicated."""

    table: str
    rows: pa.Table
    topic_id: str
    spans: dict[int, tuple[int, int]]  # partition: the first and last offset of its rows here

    @property
    def token(self) -> str:
        """`topic_id:partition:first-last,...` in partition order."""
        return f"{self.topic_id}:" + ",".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(self.spans.items()))


def _spans(partitions: pa.ChunkedArray, offsets: pa.ChunkedArray) -> dict[int, tuple[int, int]]:
    """Each partition's first and last offset, by Arrow (a per-message loop was the sink's largest Python cost)."""
    spans = pa.table({"p": partitions, "o": offsets}).group_by("p").aggregate([("o", "min"), ("o", "max")])
    found = spans.to_pydict()
    return {p: (lo, hi) for p, lo, hi in zip(found["p"], found["o_min"], found["o_max"], strict=True)}


def _kafka_columns(messages: Sequence[Message], topic: str, topic_id: str, schema_id: int) -> list[pa.Array]:
    n = len(messages)
    return [
        pa.repeat(pa.scalar(topic), n), pa.repeat(pa.scalar(topic_id), n),
        pa.array([m.partition() for m in messages], pa.int32()), pa.array([m.offset() for m in messages], pa.int64()),
        pa.array([m.timestamp()[1] for m in messages], pa.timestamp("ms", tz="UTC")),
        pa.repeat(pa.scalar(schema_id, pa.uint64()), n),
    ]


_KAFKA_NAMES = ["_topic", "_topic_id", "_partition", "_offset", "_kafka_ts", "_schema_id"]


def _framed(serde: Serde, topic: str, messages: Sequence[Message],
            rejected: list[Rejected]) -> list[tuple[Framed, list[Message]]]:
    """Messages grouped by their framing header (one group unless a schema changed mid-batch)."""
    groups: dict[bytes, tuple[Framed, list[Message]]] = {}
    refused: dict[bytes, SerdeError] = {}
    header = 5  # Confluent's; the first payload says whether it is single-object (10)
    for m in messages:
        value = m.value()
        if value is None:
            rejected.append(Rejected(m, f"topic {topic}: a tombstone (null value); the history keeps records only",
                                     "Tombstone"))
            continue
        key = value[:header]
        if key not in groups and key not in refused:
            try:
                framed = serde.writer(topic, value)
            except SerdeError as exc:
                refused[key] = exc
            else:
                header = framed.body_offset
                key = value[:header]
                groups.setdefault(key, (framed, []))
        if key in refused:
            rejected.append(Rejected(m, str(refused[key]), type(refused[key]).__name__))
        else:
            groups[key][1].append(m)
    return list(groups.values())


def build(serde: Serde, table: str, topic: str, topic_id: str,
          messages: Sequence[Message]) -> tuple[list[TableBatch], list[Rejected]]:
    """Decodes `messages` (all of `topic`) into one table per writer schema, and the messages that have no row."""
    rejected: list[Rejected] = []
    batches = []
    for framed, group in _framed(serde, topic, messages, rejected):
        decoded = decode_batch(framed.schema, [m.value() or b"" for m in group], framed.body_offset)
        rejected.extend(Rejected(group[i], reason, "ColumnValueError" if reason.startswith("field ") else "SerdeError")
                        for i, reason in decoded.bad)
        good = group if not decoded.bad else [group[i] for i in decoded.good]
        if not good:
            continue
        names = [c.name for c in columns_for(framed.schema.name)] + _KAFKA_NAMES
        rows = pa.Table.from_arrays(decoded.columns + _kafka_columns(good, topic, topic_id, framed.schema_id),
                                    names=names)
        batches.append(TableBatch(table, rows, topic_id, _spans(rows["_partition"], rows["_offset"])))
    return batches, rejected
