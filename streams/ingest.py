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
from functools import lru_cache
from typing import Protocol, cast

import schemas
from schemas.records import RECORD_TYPES, AvroRecord, BookUpdate
from streams.avro import SerdeError, decode_body
from streams.deadletter import DeadLetterSink
from streams.metrics import (
    EXCHANGE_TO_RECEIVE,
    FRAMES_RECEIVED,
    GAPS,
    MARKET_LAST_EVENT,
    PARSE_ERRORS,
    RECEIVE_TO_PRODUCE,
    HotCounterChild,
)
from streams.orderbook import BookBuilder
from streams.producer import RecordProducer
from streams.topics import TopicRegistry
from streams.venue import BookStep, Encoded, FrameParser, Parsed, ParseError

__all__ = ["CountingSink", "FrameOutcome", "IngestStats", "Ingestor", "KafkaSink", "RecordSink", "decoded"]

log = logging.getLogger(__name__)

_REPEAT_WINDOW = 1024  # liquidation frames remembered for exact-repeat detection


class _Stamped(Protocol):
    """What every market record the venues' parsers make carries (the gauge of the newest exchange time reads it)."""

    SCHEMA: str
    symbol: str
    ts_exchange_ns: int


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
        self._framing: dict[str, tuple[str, bytes]] = {}  # schema: its topic, the serde's header there

    def send_all(self, records: list[AvroRecord]) -> None:
        self.producer.send_all([(self._names[r.SCHEMA], r, r.kafka_key()) for r in records])

    def send_encoded(self, item: Encoded) -> None:
        framing = self._framing.get(item.schema)
        if framing is None:
            topic = self._names[item.schema]
            framing = self._framing[item.schema] = (topic, self.producer.header(topic, item.schema))
        self.producer.send_raw(framing[0], framing[1] + item.body, item.key)


@dataclass
class CountingSink:
    """Keeps the records in memory (tests, dry runs)."""

    records: list[AvroRecord] = field(default_factory=list)

    def send_all(self, records: list[AvroRecord]) -> None:
        self.records.extend(records)

    def send_encoded(self, item: Encoded) -> None:
        self.records.append(decoded(item))


def decoded(item: Encoded) -> AvroRecord:
    """The typed record of an encoded one."""
    return RECORD_TYPES[item.schema].from_avro(decode_body(schemas.load(item.schema), item.body))


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


class _Meters:
    """One venue's per-frame metrics, looked up once: the hot loop updates all of them in two calls and a store."""

    __slots__ = ("frames", "to_produce", "to_receive", "venue")

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.frames: dict[str, tuple[HotCounterChild, dict[str, int]]] = {}  # by kind: count, newest time by symbol
        self.to_receive, self.to_produce = EXCHANGE_TO_RECEIVE.labels(venue), RECEIVE_TO_PRODUCE.labels(venue)

    def frame(self, kind: str) -> dict[str, int]:
        """Count a frame; returns its kind's newest exchange time (ns) by symbol, for the caller to set once sent."""
        meters = self.frames.get(kind)
        if meters is None:
            meters = self.frames[kind] = (FRAMES_RECEIVED.labels(self.venue, kind),
                                          MARKET_LAST_EVENT.track(self.venue, kind))
        meters[0].value += 1
        return meters[1]

    def latency(self, exchange_ns: int, ts_recv_ns: int, now_ns: int) -> None:
        to_receive, to_produce = ts_recv_ns - exchange_ns, now_ns - ts_recv_ns
        # Clocks may disagree: a negative latency counts as 0 (a conditional: max() costs 4x as much per frame).
        self.to_receive.observe((to_receive if to_receive > 0 else 0) / 1e9)
        self.to_produce.observe((to_produce if to_produce > 0 else 0) / 1e9)


@lru_cache(maxsize=1024)
def _outcome(kind: str, records: int, resync_topic: str = "") -> FrameOutcome:
    return FrameOutcome(kind, records, resync_topic)  # immutable, so shared: one per (kind, count) on the hot path


@dataclass
class Ingestor:
    sink: RecordSink
    dead_letters: DeadLetterSink | None = None
    clock_ns: Callable[[], int] = time.time_ns
    stats: IngestStats = field(default_factory=IngestStats)
    books: BookBuilder = field(default_factory=BookBuilder)
    _recent_liquidation_frames: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    _meters: dict[str, _Meters] = field(default_factory=dict)

    def on_frame(self, parser: FrameParser, frame: str, ts_recv_ns: int, source: str) -> FrameOutcome:
        """Parse one frame and send what it yields; never raises for bad input."""
        hot = parser.encoded(frame, ts_recv_ns, self.books.native)
        if hot is None:
            return self._parse(parser, frame, ts_recv_ns, source)
        venue, kind = parser.venue, hot.kind
        meters = self._meters.get(venue) or self._venue_meters(venue)
        newest = meters.frame(kind)
        try:
            if type(hot) is Encoded:
                self.sink.send_encoded(hot)
                self.stats.records[hot.schema] += 1
                newest[hot.key] = hot.ts_exchange_ns
                outcome = _outcome(kind, 1)
            else:
                sent = self._send_step(venue, hot)
                if sent:
                    newest[hot.symbol] = hot.ts_exchange_ns
                outcome = _outcome(kind, sent, hot.topic if hot.gap else "")
        except Exception as exc:
            return self._internal_error(venue, source, exc, frame, ts_recv_ns)
        self.stats.frames[kind] += 1
        meters.latency(hot.ts_exchange_ns, ts_recv_ns, self.clock_ns())
        return outcome

    def reject(self, venue: str, source: str, error: Exception, raw: str, ts_recv_ns: int) -> FrameOutcome:
        """A line or message that never became a frame (unreadable capture line, binary message)."""
        return self._reject(venue, source, "parse", error, raw, ts_recv_ns=ts_recv_ns)

    def _parse(self, parser: FrameParser, frame: str, ts_recv_ns: int, source: str) -> FrameOutcome:
        """The Python path: the parser's records, book updates through the books."""
        try:
            parsed = parser.parse(frame, ts_recv_ns)
        except ParseError as exc:
            return self._reject(parser.venue, source, "parse", exc, frame, ts_recv_ns=ts_recv_ns)
        newest = self._venue_meters(parser.venue).frame(parsed.kind)
        if parsed.kind == "liquidation" and self._is_repeat(frame):
            self.stats.frames["repeated"] += 1
            self.stats.repeated_frames += 1
            return FrameOutcome("repeated")
        try:
            outcome = self._send_all(parser.venue, parsed, ts_recv_ns, newest)
        except SerdeError as exc:
            return self._reject(parser.venue, source, "encode", exc, frame, ts_recv_ns=ts_recv_ns)
        except Exception as exc:
            return self._internal_error(parser.venue, source, exc, frame, ts_recv_ns)
        self.stats.frames[parsed.kind] += 1
        return outcome

    def _send_all(self, venue: str, parsed: Parsed, ts_recv_ns: int, newest: dict[str, int]) -> FrameOutcome:
        # Book updates first: one the schema refuses raises SerdeError before the book or the sink saw it.
        steps = [self.books.apply(r) for r in parsed.records if isinstance(r, BookUpdate)]
        records = [r for r in parsed.records if not isinstance(r, BookUpdate)]
        self.sink.send_all(records)
        for record in cast("list[_Stamped]", records):
            self.stats.records[record.SCHEMA] += 1
            newest[record.symbol] = record.ts_exchange_ns
        for step in steps:
            if self._send_step(venue, step):
                newest[step.symbol] = step.ts_exchange_ns
        sent = len(records) + sum(len(step.records) for step in steps)
        if parsed.records:
            exchange_ns = getattr(parsed.records[0], "ts_exchange_ns", ts_recv_ns)
            self._venue_meters(venue).latency(exchange_ns, ts_recv_ns, self.clock_ns())
        return FrameOutcome(parsed.kind, sent, parsed.topic if any(step.gap for step in steps) else "")

    def _send_step(self, venue: str, step: BookStep) -> int:
        """Send what a book update produced, count a gap or a dropped delta; returns the records sent."""
        for item in step.records:
            self.sink.send_encoded(item)
            self.stats.records[item.schema] += 1
        if step.gap:
            self.stats.gaps += 1
            GAPS.labels(venue).inc()
        if step.dropped:
            self.stats.dropped_deltas += 1
        return len(step.records)

    def _internal_error(self, venue: str, source: str, error: Exception, frame: str, ts_recv_ns: int) -> FrameOutcome:
        """A bug of ours must not stop the feed: keep the frame, count it, log it."""
        log.exception("ingest failed on a frame from %s", source)
        self.stats.internal_errors += 1
        return self._reject(venue, source, "ingest", error, frame, ts_recv_ns=ts_recv_ns)

    def _venue_meters(self, venue: str) -> _Meters:
        return self._meters.get(venue) or self._meters.setdefault(venue, _Meters(venue))  # once per venue

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
