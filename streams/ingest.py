"""Venue frames to Kafka records, shared by the live connectors, capture replay and benchmarks.

Parse, check book continuity, drop exact repeats of liquidation frames, send; a frame that fails is
dead-lettered raw with the reason and counted, and the stream goes on.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from prometheus_client import Counter as CounterChild

import schemas
from schemas.records import RECORD_TYPES, AvroRecord, BookUpdate
from streams.avro import SerdeError, decode_body
from streams.deadletter import DeadLetterSink
from streams.metrics import (
    EXCHANGE_TO_RECEIVE,
    FRAMES_RECEIVED,
    GAPS,
    PARSE_ERRORS,
    RECEIVE_TO_PRODUCE,
    HotHistogramChild,
)
from streams.orderbook import BookBuilder
from streams.producer import RecordProducer
from streams.topics import TopicRegistry
from streams.venue import Encoded, FrameParser, Parsed, ParseError

__all__ = ["CountingSink", "FrameOutcome", "IngestStats", "Ingestor", "KafkaSink", "RecordSink"]

log = logging.getLogger(__name__)

_REPEAT_WINDOW = 1024  # liquidation frames remembered for exact-repeat detection


class RecordSink(Protocol):
    """Where ingested records go: Kafka, or only kept (dry runs). All of a frame's records, or none."""

    def send_all(self, records: list[AvroRecord]) -> None: ...

    def send_encoded(self, item: Encoded) -> None: ...


@dataclass
class KafkaSink:
    """Each record to its schema's topic, keyed by its key field."""

    producer: RecordProducer
    topics: TopicRegistry

    def __post_init__(self) -> None:
        self._names = {spec.schema: self.topics.name(spec) for spec in self.topics.specs}

    def send_all(self, records: list[AvroRecord]) -> None:
        self.producer.send_all([(self._names[r.SCHEMA], r, r.kafka_key()) for r in records])

    def send_encoded(self, item: Encoded) -> None:
        self.producer.send_encoded(self._names[item.schema], item.schema, item.body, item.key)


@dataclass
class CountingSink:
    """Keeps the records in memory (tests, dry runs)."""

    records: list[AvroRecord] = field(default_factory=list)

    def send_all(self, records: list[AvroRecord]) -> None:
        self.records.extend(records)

    def send_encoded(self, item: Encoded) -> None:
        self.records.append(RECORD_TYPES[item.schema].from_avro(decode_body(schemas.load(item.schema), item.body)))


@dataclass
class IngestStats:
    frames: Counter[str] = field(default_factory=Counter)  # by what the frame turned out to be
    records: Counter[str] = field(default_factory=Counter)  # by schema
    errors: int = 0
    gaps: int = 0
    dropped_deltas: int = 0
    repeated_frames: int = 0
    internal_errors: int = 0  # frames that hit a bug of ours (dead-lettered too); tests require zero
    error_samples: list[str] = field(default_factory=list)  # the first few, for people to read

    def summary(self) -> dict[str, int]:
        return {"frames": sum(self.frames.values()), "records": sum(self.records.values()),
                "errors": self.errors, "gaps": self.gaps}


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    """What happened to one frame; `resync_topic` asks the connector for a fresh book snapshot."""

    kind: str
    records: int = 0
    resync_topic: str = ""


@dataclass
class Ingestor:
    sink: RecordSink
    dead_letters: DeadLetterSink | None = None
    clock_ns: Callable[[], int] = time.time_ns
    stats: IngestStats = field(default_factory=IngestStats)
    books: BookBuilder = field(default_factory=BookBuilder)
    _recent_liquidation_frames: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    def on_frame(self, parser: FrameParser, frame: str, ts_recv_ns: int, source: str) -> FrameOutcome:
        """Parse one frame and send what it yields; never raises for bad input."""
        hot = parser.encoded(frame, ts_recv_ns)
        if hot is not None:
            return self._send_encoded(parser.venue, hot, frame, ts_recv_ns, source)
        try:
            parsed = parser.parse(frame, ts_recv_ns)
        except ParseError as exc:
            return self._reject(parser.venue, source, "parse", exc, frame, ts_recv_ns=ts_recv_ns)
        self._frames_metric(parser.venue, parsed.kind).inc()
        if parsed.kind == "liquidation" and self._is_repeat(frame):
            self.stats.frames["repeated"] += 1
            self.stats.repeated_frames += 1
            return FrameOutcome("repeated")
        try:
            outcome = self._send_all(parser.venue, parsed, ts_recv_ns)
        except SerdeError as exc:
            return self._reject(parser.venue, source, "encode", exc, frame, ts_recv_ns=ts_recv_ns)
        except Exception as exc:
            return self._internal_error(parser.venue, source, exc, frame, ts_recv_ns)
        self.stats.frames[parsed.kind] += 1
        return outcome

    def reject(self, venue: str, source: str, error: Exception, raw: str, ts_recv_ns: int) -> FrameOutcome:
        """A line or message that never became a frame (unreadable capture line, binary message)."""
        return self._reject(venue, source, "parse", error, raw, ts_recv_ns=ts_recv_ns)

    def _send_all(self, venue: str, parsed: Parsed, ts_recv_ns: int) -> FrameOutcome:
        outputs = [out for record in parsed.records for out in self._book_checked(record)]
        self.sink.send_all(outputs)
        resync = ""
        for out in outputs:
            self.stats.records[out.SCHEMA] += 1
            if isinstance(out, BookUpdate) and out.update_type == "RESYNC":
                resync = parsed.topic
        if parsed.records:
            self._observe_latency(venue, getattr(parsed.records[0], "ts_exchange_ns", ts_recv_ns), ts_recv_ns)
        return FrameOutcome(parsed.kind, len(outputs), resync)

    def _send_encoded(self, venue: str, hot: Encoded, frame: str, ts_recv_ns: int, source: str) -> FrameOutcome:
        self._frames_metric(venue, hot.kind).inc()
        try:
            self.sink.send_encoded(hot)
        except Exception as exc:
            return self._internal_error(venue, source, exc, frame, ts_recv_ns)
        self.stats.frames[hot.kind] += 1
        self.stats.records[hot.schema] += 1
        self._observe_latency(venue, hot.ts_exchange_ns, ts_recv_ns)
        return FrameOutcome(hot.kind, 1)

    def _internal_error(self, venue: str, source: str, error: Exception, frame: str, ts_recv_ns: int) -> FrameOutcome:
        """A bug of ours must not stop the feed: keep the frame, count it, log it."""
        log.exception("ingest failed on a frame from %s", source)
        self.stats.internal_errors += 1
        return self._reject(venue, source, "ingest", error, frame, ts_recv_ns=ts_recv_ns)

    def _observe_latency(self, venue: str, exchange_ns: int, ts_recv_ns: int) -> None:
        to_receive, to_produce = self._latency_metrics(venue)
        to_receive.observe(max(0, ts_recv_ns - exchange_ns) / 1e9)
        to_produce.observe(max(0, self.clock_ns() - ts_recv_ns) / 1e9)

    def _book_checked(self, record: AvroRecord) -> tuple[AvroRecord, ...]:
        if not isinstance(record, BookUpdate):
            return (record,)
        step = self.books.apply(record)
        if step.gap:
            self.stats.gaps += 1
            GAPS.labels(record.venue).inc()
        if step.dropped:
            self.stats.dropped_deltas += 1
        return step.records

    @staticmethod
    @cache
    def _frames_metric(venue: str, kind: str) -> CounterChild:
        return FRAMES_RECEIVED.labels(venue, kind)  # labels() costs a lookup per frame otherwise

    @staticmethod
    @cache
    def _latency_metrics(venue: str) -> tuple[HotHistogramChild, HotHistogramChild]:
        return EXCHANGE_TO_RECEIVE.labels(venue), RECEIVE_TO_PRODUCE.labels(venue)

    def _is_repeat(self, frame: str) -> bool:
        digest = hashlib.blake2b(frame.encode(), digest_size=16).digest()
        if digest in self._recent_liquidation_frames:
            return True
        self._recent_liquidation_frames[digest] = None
        if len(self._recent_liquidation_frames) > _REPEAT_WINDOW:
            self._recent_liquidation_frames.popitem(last=False)
        return False

    def _reject(self, venue: str, source: str, stage: str, error: Exception, raw: str, *,
                ts_recv_ns: int) -> FrameOutcome:
        self.stats.errors += 1
        self.stats.frames["error"] += 1
        if len(self.stats.error_samples) < 20:
            self.stats.error_samples.append(f"{source}: {error}")
        PARSE_ERRORS.labels(venue).inc()
        if self.dead_letters is not None:
            self.dead_letters.send(source=source, stage=stage, error=error, raw=raw.encode(), ts_recv_ns=ts_recv_ns)
        return FrameOutcome("error")
