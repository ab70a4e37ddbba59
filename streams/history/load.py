"""Records into the history tables as the sink writes them, without Kafka (benchmarks, tests): decoded by the sink's
own decoder, with Kafka coordinates made the way a topic gives them (offsets from 0 per topic and partition, in the
order the records were produced)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["PRODUCE_DELAY_MS", "insert", "land", "partition_of"]

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from liqbot.errors import LiqbotError
from schemas import load_all
from schemas.records import AvroRecord
from streams.avro import encode_body
from streams.history.arrow import decode_batch
from streams.history.columns import columns_for
from streams.topics import TOPICS

PRODUCE_DELAY_MS = 2  # what the rows' Kafka timestamps add to their receive time here


def insert(client: Client, namespace: str, data: Sequence[dict[str, Any]], schema: str, partition: int = 0) -> None:
    """Records of one schema into its table under `namespace`, on `partition` at offsets 0..n-1."""
    spec = next(s for s in TOPICS if s.schema == schema)
    writer = load_all()[schema]
    decoded = decode_batch(writer, [encode_body(writer, d) for d in data], 0)
    if decoded.bad:
        raise LiqbotError(f"{len(decoded.bad)} of {len(data)} {schema} records did not decode")
    n = len(data)
    received = [d.get("ts_recv_ns", d["ts_event_ns"]) // 1_000_000 + PRODUCE_DELAY_MS for d in data]
    kafka = [pa.array([namespace + spec.name] * n), pa.array(["id"] * n), pa.array([partition] * n, pa.int32()),
             pa.array(range(n), pa.int64()), pa.array(received, pa.timestamp("ms", tz="UTC")),
             pa.array([1] * n, pa.uint64())]
    names = [c.name for c in columns_for(schema)] + ["_topic", "_topic_id", "_partition", "_offset", "_kafka_ts",
                                                     "_schema_id"]
    client.insert_arrow(spec.table, pa.Table.from_arrays(decoded.columns + kafka, names=names))


def partition_of(record: AvroRecord, partitions: int) -> int:
    """The partition a keyed producer gives the record: a hash of its key (librdkafka's is crc32 too)."""
    return zlib.crc32(record.kafka_key().encode()) % partitions


def land(client: Client, namespace: str, records: Iterable[AvroRecord],
         partitions: int) -> dict[tuple[str, int], list[AvroRecord]]:
    """Records produced in this order to their topics under `namespace`, then sunk; each (topic, partition)'s
    records in offset order, as they landed."""
    by_source: dict[tuple[str, int], list[AvroRecord]] = {}
    for record in records:
        by_source.setdefault((record.SCHEMA, partition_of(record, partitions)), []).append(record)
    for (schema, partition), rows in by_source.items():
        insert(client, namespace, [r.to_avro() for r in rows], schema, partition)
    topic_of = {s.schema: s.name for s in TOPICS}
    return {(topic_of[schema], partition): rows for (schema, partition), rows in by_source.items()}
