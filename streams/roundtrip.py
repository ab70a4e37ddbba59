"""The foundation's main job: real Bybit frames -> typed records -> Avro -> Kafka -> back, compared."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.records import AvroRecord
from streams.capture_replay import replay_captures
from streams.consumer import RecordConsumer
from streams.ingest import CountingSink, Ingestor
from streams.producer import RecordProducer
from streams.topics import TopicRegistry

__all__ = ["CaptureRecords", "TopicResult", "records_from_captures", "roundtrip"]


@dataclass
class CaptureRecords:
    """Records made from capture files by the live path's parser and book checks, with the frame counts."""

    records: list[AvroRecord]
    frames: Counter[str]
    errors: list[str]


@dataclass(frozen=True)
class TopicResult:
    topic: str
    schema: str
    sent: int
    received: int
    identical: bool
    in_key_order: bool


def records_from_captures(paths: Iterable[Path]) -> CaptureRecords:
    """Every record the live path makes of these captures (trades, books and top of book, tickers, ...)."""
    sink = CountingSink()
    stats = replay_captures(paths, Ingestor(sink), say=lambda _: None)
    return CaptureRecords(sink.records, stats.frames, stats.error_samples)


def roundtrip(records: list[AvroRecord], topics: TopicRegistry, producer: RecordProducer,
              make_consumer: Callable[[list[str], str], RecordConsumer], *, idle_timeout_s: float = 15.0,
              say: Callable[[str], None] = print) -> list[TopicResult]:
    """Produce every record to its topic keyed by symbol, consume them all back, compare per topic."""
    destination = [topics.name(topics.for_schema(record.SCHEMA)) for record in records]
    # positioned before producing: earlier runs' records on the same topics are not read back
    consumer = make_consumer(sorted(set(destination)), f"liqbot-roundtrip-{uuid.uuid4().hex[:8]}")
    sent: dict[str, list[AvroRecord]] = defaultdict(list)
    received: dict[str, list[AvroRecord]] = defaultdict(list)
    total = 0
    try:
        for i, (record, topic) in enumerate(zip(records, destination, strict=True), 1):
            producer.send(topic, record, key=record.kafka_key())
            sent[topic].append(record)
            if i % 2000 == 0:
                say(f"  produced {i}/{len(records)}")
        producer.drain(30.0)
        say(f"  produced {len(records)} records, {producer.failed} delivery failures; consuming them back ...")
        for got in consumer.records(idle_timeout_s):
            received[got.topic].append(got.record)
            total += 1
            if total == len(records):
                break
    finally:
        consumer.close()
    return [_compare(topic, sent[topic], received[topic]) for topic in sorted(sent)]


def _compare(topic: str, sent: list[AvroRecord], received: list[AvroRecord]) -> TopicResult:
    def by_key(records: list[AvroRecord]) -> dict[str, list[AvroRecord]]:
        groups: dict[str, list[AvroRecord]] = defaultdict(list)
        for r in records:
            groups[r.kafka_key()].append(r)
        return groups

    return TopicResult(
        topic=topic, schema=sent[0].SCHEMA, sent=len(sent), received=len(received),
        identical=Counter(sent) == Counter(received), in_key_order=by_key(sent) == by_key(received),
    )
