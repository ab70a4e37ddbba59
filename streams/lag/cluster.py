"""The cluster as lag needs it, one round at a time: new `__consumer_offsets` records, log offsets, group names.

Commits come from `__consumer_offsets` itself, as Burrow reads them: each carries the coordinator's commit time and
its position in the log (the commit order), so a consumer that stops committing shows as STOP, not as STALL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from liqbot.errors import LiqbotError
from streams.lag.offsets_topic import OFFSETS_TOPIC, OffsetsParseError, OffsetsRecord, parse_record

__all__ = ["ClusterError", "ClusterReader", "CommitBatch", "LogOffsets", "OffsetsEntry", "TopicPartitionId"]

log = logging.getLogger(__name__)

TopicPartitionId = tuple[str, int]

_EARLIEST = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]


class ClusterError(LiqbotError):
    """Kafka did not answer, or answered with an error, during a round."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetsEntry:
    """One `__consumer_offsets` record with its position there (one group's records all sit in one partition)."""

    order: int
    record: OffsetsRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitBatch:
    """The records read in one round, in log order per `__consumer_offsets` partition, and how many were unreadable."""

    entries: tuple[OffsetsEntry, ...]
    malformed: int


@dataclass(frozen=True, slots=True)
class LogOffsets:
    earliest: int  # log start offset
    latest: int  # high watermark (the offset the next record gets)


class ClusterReader:
    """A group-less consumer on `__consumer_offsets` (from its beginning) and an admin client, on one cluster."""

    def __init__(self, bootstrap: str, *, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        common: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": int(timeout_s * 1000)}
        self._admin = AdminClient(common)
        self._consumer = Consumer({
            **common,
            "group.id": "liqbot-lag-reader",  # required by librdkafka; never joined (assign only) nor committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",  # transactional offset commits count once their transaction does
        })
        self._next: dict[int, int] = {}  # per __consumer_offsets partition: the next offset to read

    def read_commits(self) -> CommitBatch:
        """Every `__consumer_offsets` record written since the last call (the whole log on the first)."""
        ends = self._offsets_topic_ends()
        entries: list[OffsetsEntry] = []
        malformed = 0
        deadline = time.monotonic() + self.timeout_s
        while self._behind(ends):
            if time.monotonic() > deadline:
                raise ClusterError(f"{OFFSETS_TOPIC} at {self.bootstrap} could not be read to its end within "
                                   f"{self.timeout_s:.0f} s; is the broker overloaded? (`liqbot kafka status`)")
            messages = self._consumer.consume(num_messages=10_000, timeout=0.1)
            for msg in messages:
                entry = self._entry(msg)
                if entry is None:
                    malformed += 1
                else:
                    entries.append(entry)
            if not messages:
                self._catch_up_positions(ends)  # transaction markers and compacted gaps yield no message
        return CommitBatch(entries=tuple(entries), malformed=malformed)

    def log_offsets(self, partitions: Iterable[TopicPartitionId]) -> dict[TopicPartitionId, LogOffsets]:
        """Log start and high watermark of each partition; a partition that no longer exists is left out."""
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        earliest = self._list_offsets(wanted, _EARLIEST, IsolationLevel.READ_UNCOMMITTED)
        latest = self._list_offsets(wanted, _LATEST, IsolationLevel.READ_UNCOMMITTED)
        return {tp: LogOffsets(earliest[tp], latest[tp]) for tp in wanted if tp in earliest and tp in latest}

    def groups(self) -> frozenset[str]:
        """The consumer groups the cluster lists now (with or without members)."""
        try:
            listed = self._admin.list_consumer_groups(request_timeout=self.timeout_s).result()
        except KafkaException as exc:
            raise self._unreachable(exc) from exc
        return frozenset(g.group_id for g in listed.valid if g.group_id)

    def close(self) -> None:
        self._consumer.close()

    def _offsets_topic_ends(self) -> dict[int, int]:
        """Last stable offset of each `__consumer_offsets` partition; none before the first group commits."""
        try:
            topic = self._admin.list_topics(OFFSETS_TOPIC, timeout=self.timeout_s).topics.get(OFFSETS_TOPIC)
        except KafkaException as exc:
            raise self._unreachable(exc) from exc
        if topic is None or topic.error is not None or not topic.partitions:
            return {}
        partitions = sorted(topic.partitions)
        new = [p for p in partitions if p not in self._next]
        if new:
            assignment = [TopicPartition(OFFSETS_TOPIC, p, self._next[p]) for p in self._next]
            self._consumer.assign(assignment + [TopicPartition(OFFSETS_TOPIC, p, OFFSET_BEGINNING) for p in new])
            self._next.update({p: 0 for p in new})
        ends = self._list_offsets([(OFFSETS_TOPIC, p) for p in partitions], _LATEST,
                                  IsolationLevel.READ_COMMITTED)
        return {p: ends[(OFFSETS_TOPIC, p)] for p in partitions if (OFFSETS_TOPIC, p) in ends}

    def _behind(self, ends: dict[int, int]) -> bool:
        return any(self._next[p] < end for p, end in ends.items())

    def _entry(self, msg: Message) -> OffsetsEntry | None:
        err = msg.error()
        if err is not None:
            raise ClusterError(f"reading {OFFSETS_TOPIC} at {self.bootstrap} failed: {err.str()}")
        partition, offset = msg.partition() or 0, msg.offset() or 0
        self._next[partition] = offset + 1
        try:
            return OffsetsEntry(order=offset, record=parse_record(msg.key(), msg.value()))
        except OffsetsParseError as exc:
            log.warning("skipped %s[%s]@%s: %s", OFFSETS_TOPIC, partition, offset, exc)
            return None

    def _catch_up_positions(self, ends: dict[int, int]) -> None:
        behind = [TopicPartition(OFFSETS_TOPIC, p) for p, end in ends.items() if self._next[p] < end]
        for tp in self._consumer.position(behind):
            if tp.offset >= 0:
                self._next[tp.partition] = max(self._next[tp.partition], tp.offset)

    def _list_offsets(self, partitions: list[TopicPartitionId], spec: OffsetSpec,
                      isolation: IsolationLevel) -> dict[TopicPartitionId, int]:
        request = {TopicPartition(t, p): spec for t, p in partitions}
        try:
            futures = self._admin.list_offsets(request, isolation_level=isolation, request_timeout=self.timeout_s)
        except KafkaException as exc:
            raise self._unreachable(exc) from exc
        found: dict[TopicPartitionId, int] = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = int(future.result().offset)
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue  # the topic was deleted: its partitions drop out of the report
                raise self._unreachable(exc) from exc
        return found

    def _unreachable(self, exc: KafkaException) -> ClusterError:
        return ClusterError(f"Kafka at {self.bootstrap} did not answer: {exc.args[0]}; is it up? "
                            "(`liqbot kafka status`; another cluster: --bootstrap HOST:PORT)")
