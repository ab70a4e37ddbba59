"""Kafka to ClickHouse, every record exactly once: insert first, commit after, skip on re-delivery what landed.

docs/history.md gives the design and why it differs from ClickHouse's Kafka Connect sink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]  # (stubs lag the module)
from tenacity import RetryCallState, Retrying, stop_when_event_set, wait_exponential

from liqbot.config import Settings
from streams.avro import SerdeError
from streams.deadletter import DeadLetterSink
from streams.history.batch import Rejected, TableBatch, build
from streams.history.landed import Ranges, Resume, landed_ranges, resume
from streams.metrics import SINK_COMMITS, SINK_INSERT_SECONDS, SINK_RETRIES, SINK_ROWS
from streams.serde import Serde
from streams.topics import TopicRegistry

__all__ = ["SinkConfig", "SinkCounts", "TableSink"]

log = logging.getLogger(__name__)

_SETTLE_POLL_S = 0.01
Ends = dict[tuple[str, int], int]  # (topic, partition): the offset to commit, one past the last written


@dataclass(frozen=True, slots=True)
class _Flight:
    """The insert the writer thread is doing, and the offsets to commit once it is done."""

    done: Future[None]
    ends: Ends


@dataclass(frozen=True, kw_only=True)
class SinkConfig:
    """A batch is written when it holds `batch_rows` records or its oldest waited `batch_ms`."""

    group_id: str = "liqbot-sink"
    # Static membership: a restarted sink takes its partitions back at once, without waiting out the session of
    # the process it replaces (45 s); two sinks in one group need two ids.
    instance_id: str = "sink-1"
    batch_rows: int = 100_000
    batch_ms: int = 200
    retry_max_s: float = 10.0
    idle_exit_s: float | None = None  # return once nothing arrived for this long (a bounded run: tests, main job)


@dataclass
class SinkCounts:
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead_letters: int = 0
    skipped: int = 0
    inserts: int = 0
    retries: int = 0
    waiting: str | None = None  # what the sink waits for, while it does


class TableSink:
    """Consumes every topic of the registry into its table; `run` returns when `stop` is set."""

    def __init__(self, settings: Settings, serde: Serde, client: Client, dead_letters: DeadLetterSink,
                 config: SinkConfig = SinkConfig()) -> None:
        self._settings, self._serde, self._client, self._dead = settings, serde, client, dead_letters
        self._config = config
        self._topics = TopicRegistry(settings.kafka)
        self._tables = {self._topics.name(s): s.table for s in self._topics.specs}
        self._admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        self._ids = self._topic_ids(list(self._tables))
        self._resume: dict[tuple[str, int], Resume] = {}
        self._pending: list[Message] = []
        # One insert in flight while the next batch is polled and decoded; commits stay on this thread, in order.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-insert")
        self._flight: _Flight | None = None
        self._oldest = 0.0
        self._callback_error: BaseException | None = None
        self.counts = SinkCounts()
        self.stop = threading.Event()
        self._consumer = Consumer({
            # prefixed like the topics: each namespace (a test's, a replay run's) has its own group
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": settings.kafka.topic_prefix + config.group_id,
            "group.instance.id": config.instance_id,
            "client.id": f"{settings.kafka.client_id}-sink", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "fetch.wait.max.ms": 20,  # a quiet partition must not hold a batch back (freshness)
            # librdkafka's default (100,000) refills the prefetch queue only after a poll drained it below that: a
            # batch-sized poll then waits on the fetch each time (2.2 s instead of 0.4 s for 500,000 records here)
            "queued.min.messages": 1_000_000,
            "on_commit": self._committed,
        })

    def _topic_ids(self, names: list[str]) -> dict[str, str]:
        """Each topic's id: offsets restart when a topic is re-created, its id does not stay the same."""
        described = self._admin.describe_topics(TopicCollection(names))
        return {name: str(future.result(timeout=30).topic_id) for name, future in described.items()}

    def run(self, on_progress: Callable[[SinkCounts], None] | None = None, progress_s: float = 5.0) -> None:
        self._consumer.subscribe(list(self._tables), on_assign=self._guarded(self._assign),
                                 on_revoke=self._guarded(self._revoke))
        last_report = self._last_record = time.monotonic()
        try:
            while not self.stop.is_set() and not self._idle():
                self._poll()
                if self._pending and (len(self._pending) >= self._config.batch_rows
                                      or time.monotonic() - self._oldest >= self._config.batch_ms / 1000):
                    self._dispatch()
                if self._flight is not None and self._flight.done.done():
                    self._settle(asynchronous=True)
                if on_progress is not None and time.monotonic() - last_report >= progress_s:
                    on_progress(self.counts)
                    last_report = time.monotonic()
            self.flush()
        except BaseException:
            self.stop.set()  # an insert retrying in the writer gives up: nothing after it is committed
            raise
        finally:
            self._writer.shutdown(wait=True)
            self._consumer.close()

    def _idle(self) -> bool:
        idle = self._config.idle_exit_s
        return (idle is not None and not self._pending and self._flight is None
                and time.monotonic() - self._last_record >= idle)

    def _poll(self) -> None:
        room = max(1, self._config.batch_rows - len(self._pending))
        polled = time.monotonic()
        wait = self._config.batch_ms / 1000 if not self._pending else max(
            0.0, self._oldest + self._config.batch_ms / 1000 - polled)
        if self._flight is not None:
            wait = min(wait, _SETTLE_POLL_S)  # its commit follows the insert closely
        messages = self._consumer.consume(num_messages=min(room, 100_000), timeout=wait)
        if self._callback_error is not None:
            raise self._callback_error
        good = [m for m in messages if m.error() is None]
        if len(good) != len(messages):
            for m in messages:
                if m.error() is not None:
                    raise KafkaException(m.error())
        if self._resume and any(r.skip for r in self._resume.values()):
            before = len(good)
            good = [m for m in good if not self._landed(m)]
            self.counts.skipped += before - len(good)
        if messages:
            self._last_record = time.monotonic()
        if good and not self._pending:
            # consume() waits out its timeout unless the batch fills: the first of these may have come at its start
            self._oldest = polled
        self._pending.extend(good)

    def _landed(self, m: Message) -> bool:
        known = self._resume.get((m.topic() or "", m.partition() or 0))
        return known is not None and known.landed(m.offset() or 0)

    def flush(self) -> None:
        """Writes what is pending and commits all that is written; nothing is committed that is not in ClickHouse."""
        self._dispatch()
        self._settle(asynchronous=False)

    def _dispatch(self) -> None:
        """Decodes the pending messages here and hands their inserts to the writer, once the one in flight is done."""
        if not self._pending:
            return
        batches, ends = self._build(self._pending)
        self._pending = []
        self._settle(asynchronous=True)
        self._flight = _Flight(self._writer.submit(self._insert_all, batches), ends)

    def _build(self, messages: list[Message]) -> tuple[list[TableBatch], Ends]:
        """A table per topic (and writer schema); the rows that have none are dead-lettered (sent, not yet flushed)."""
        by_topic: dict[str, list[Message]] = defaultdict(list)
        for m in messages:
            by_topic[m.topic() or ""].append(m)
        out: list[TableBatch] = []
        ends: Ends = {}
        for topic, group in by_topic.items():
            batches, rejected = build(self._serde, self._tables[topic], topic, self._ids[topic], group)
            self._dead_letter(rejected)
            out.extend(batches)
            for batch in batches:
                for partition, (_, last) in batch.spans.items():
                    ends[(topic, partition)] = max(ends.get((topic, partition), 0), last + 1)
            for r in rejected:
                key = (topic, r.message.partition() or 0)
                ends[key] = max(ends.get(key, 0), (r.message.offset() or 0) + 1)
        return out, ends

    def _settle(self, *, asynchronous: bool) -> None:
        """Waits for the insert in flight (raising what it raised), then commits its offsets after its dead letters."""
        flight, self._flight = self._flight, None
        if flight is None:
            return
        flight.done.result()
        self._dead.flush()  # a dead letter is safe before its offset is committed
        self._commit(flight.ends, asynchronous)

    def _insert_all(self, batches: list[TableBatch]) -> None:
        for batch in batches:
            self._insert(batch)

    def _insert(self, batch: TableBatch) -> None:
        started = time.perf_counter()
        for attempt in Retrying(wait=wait_exponential(multiplier=0.1, max=self._config.retry_max_s),
                                stop=stop_when_event_set(self.stop), before_sleep=self._waiting, reraise=True):
            with attempt:
                self._client.insert_arrow(batch.table, batch.rows,
                                          settings={"insert_deduplication_token": batch.token})
        if self.counts.waiting is not None:
            log.warning("ClickHouse takes inserts again; %s written", batch.table)
            self.counts.waiting = None
        self.counts.rows[batch.table] += batch.rows.num_rows
        self.counts.inserts += 1
        SINK_ROWS.labels(batch.table).inc(batch.rows.num_rows)
        SINK_INSERT_SECONDS.labels(batch.table).observe(time.perf_counter() - started)

    def _waiting(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self.counts.retries += 1
        self.counts.waiting = f"ClickHouse to take an insert ({type(error).__name__}: {str(error)[:300]})"
        SINK_RETRIES.inc()
        log.warning("waiting for %s; attempt %d, next in %.1fs; nothing is committed meanwhile",
                    self.counts.waiting, state.attempt_number, state.upcoming_sleep)

    def _dead_letter(self, rejected: list[Rejected]) -> None:
        for r in rejected:
            m = r.message
            self._dead.send(source=m.topic() or "", stage="sink", error=SerdeError(r.reason), error_type=r.error_type,
                            raw=m.value() or b"", key=m.key(), partition=m.partition(), offset=m.offset())
        self.counts.dead_letters += len(rejected)

    def _commit(self, ends: Ends, asynchronous: bool) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # a synchronous one's; its callback says so too
            log.debug("commit of %d partitions failed: %s", len(offsets), exc)

    def _committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Every commit's outcome, called by librdkafka during a poll (or a synchronous commit)."""
        if error is None:
            SINK_COMMITS.inc()
        else:  # a rebalance took the partitions: the next owner skips what landed
            log.warning("commit failed (%s); the rows are in ClickHouse and will not be written twice", error)

    def _guarded(self, step: Callable[[Consumer, list[TopicPartition]], None]
                 ) -> Callable[[Consumer, list[TopicPartition]], None]:
        """A rebalance callback; confluent-kafka garbles what one raises, so the error is raised after the poll."""
        def callback(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            try:
                step(consumer, partitions)
            except BaseException as exc:
                self._callback_error = exc
        return callback

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        earliest = self._earliest(committed)
        for topic in sorted({tp.topic for tp in committed}):
            mine = [tp for tp in committed if tp.topic == topic]
            for tp, (since, ranges) in zip(mine, self._new_since(topic, mine, earliest), strict=True):
                plan = self._resume[(tp.topic, tp.partition)] = resume(since, ranges)
                if plan.start != since or plan.skip:
                    log.warning("%s[%d]: from offset %d ClickHouse holds %s already; reading from %d", tp.topic,
                                tp.partition, since, ranges, plan.start)
                tp.offset = plan.start
        consumer.assign(committed)

    def _earliest(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """The earliest offset Kafka keeps of each partition, in one request."""
        asked = {TopicPartition(tp.topic, tp.partition): OffsetSpec.earliest()  # type: ignore[no-untyped-call]
                 for tp in partitions}
        found = self._admin.list_offsets(asked, request_timeout=30)
        return {(tp.topic, tp.partition): int(future.result(timeout=30).offset) for tp, future in found.items()}

    def _new_since(self, topic: str, partitions: list[TopicPartition],
                   earliest: dict[tuple[str, int], int]) -> list[tuple[int, Ranges]]:
        """Per partition, where the store's copy may end: the committed offset when the store holds the row before
        it, else the earliest Kafka keeps (a new or restored store re-reads what it lacks); and the runs it holds from
        there, which the landed ranges keep from being written twice."""
        table, topic_id = self._tables[topic], self._ids[topic]
        low = {tp.partition: earliest[(topic, tp.partition)] for tp in partitions}
        committed = {tp.partition: int(tp.offset) for tp in partitions if tp.offset > low[tp.partition]}
        held = landed_ranges(self._client, table, topic_id, {p: committed.get(p, low[p] + 1) - 1 for p in low})
        lacking = {p: low[p] for p, c in committed.items() if not held[p] or held[p][0][0] != c - 1}
        for p in sorted(lacking):
            log.warning("%s[%d]: the group committed %d but %s lacks offset %d: reading again from %d", topic, p,
                        committed[p], table, committed[p] - 1, low[p])
        if lacking:
            held.update(landed_ranges(self._client, table, topic_id, lacking))
        out: list[tuple[int, Ranges]] = []
        for tp in partitions:
            p = tp.partition
            if p not in committed or p in lacking:
                out.append((low[p], held[p]))
                continue
            (_, last), rest = held[p][0], held[p][1:]  # the run through the row before the committed offset
            out.append((committed[p], ([(committed[p], last)] if last >= committed[p] else []) + rest))
        return out

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.flush()
        for tp in partitions:
            self._resume.pop((tp.topic, tp.partition), None)

