"""Lag state fed one round at a time: commits into Burrow windows, high watermarks into lookup tables; no I/O.

A round is fed in the order the monitor keeps: the commits read since the last round first, each judged against the
high watermark sampled before it (Burrow's order), then the high watermarks sampled now.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from streams.lag.cluster import LogOffsets, OffsetsEntry, TopicPartitionId
from streams.lag.evaluator import LagConfig, PartitionWindow, Status, evaluate
from streams.lag.lookup import DEFAULT_SIZE, LookupTable, time_lag_s
from streams.lag.offsets_topic import GroupDeleted, OffsetCommit, OffsetDeleted

__all__ = ["EventLag", "GroupLag", "LagSnapshot", "LagTracker", "PartitionLag"]

# (topic, partition, committed offset, log offsets) -> event-time lag in seconds; None: the topic has no event time
EventLag = Callable[[str, int, int, LogOffsets], float | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionLag:
    """One group's lag on one partition."""

    group: str
    topic: str
    partition: int
    committed: int
    commit_timestamp_ms: int
    high_watermark: int
    earliest: int
    lag: int  # high watermark minus committed, at least 0
    lag_s: float  # kafka-lag-exporter's interpolated time lag; NaN with fewer than two samples
    event_lag_s: float | None  # event time of the newest record minus the last consumed one; None: no event time
    status: Status


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupLag:
    group: str
    status: Status  # Burrow's group status: OK, WARN, ERR, or NOTFOUND once no commit came within expire_group_s
    complete: float
    total_lag: int
    max_lag: int
    max_lag_s: float  # the largest known time lag; NaN when none is known
    partitions: tuple[PartitionLag, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LagSnapshot:
    time_ms: int
    groups: tuple[GroupLag, ...]  # by group name
    log_offsets: Mapping[TopicPartitionId, LogOffsets]

    def group(self, name: str) -> GroupLag | None:
        return next((g for g in self.groups if g.group == name), None)


class LagTracker:
    """Per group and partition: the last commit and Burrow's window; per partition: the (high watermark, time) table."""

    def __init__(self, config: LagConfig | None = None, *, groups: Iterable[str] | None = None,
                 table_size: int = DEFAULT_SIZE) -> None:
        self.config = config or LagConfig()
        self.only = frozenset(groups) if groups is not None else None  # None: every group
        self._table_size = table_size
        self._committed: dict[str, dict[TopicPartitionId, OffsetCommit]] = {}
        self._windows: dict[str, dict[TopicPartitionId, PartitionWindow]] = {}
        self._tables: dict[TopicPartitionId, LookupTable] = {}
        self._log: dict[TopicPartitionId, LogOffsets] = {}

    @property
    def groups(self) -> frozenset[str]:
        """Groups with at least one committed offset."""
        return frozenset(self._committed)

    def partitions(self) -> frozenset[TopicPartitionId]:
        """Every partition some tracked group has an offset on."""
        return frozenset(tp for offsets in self._committed.values() for tp in offsets)

    def unsampled(self, entries: Iterable[OffsetsEntry]) -> frozenset[TopicPartitionId]:
        """Partitions these commits are on whose high watermark was never sampled (their commits would be lost)."""
        return frozenset((e.record.topic, e.record.partition) for e in entries
                         if isinstance(e.record, OffsetCommit) and self._wanted(e.record.group)
                         and (e.record.topic, e.record.partition) not in self._log)

    def apply(self, entries: Iterable[OffsetsEntry], now_ms: int) -> None:
        """Commits, offset tombstones and group deletions, in log order."""
        for entry in entries:
            record = entry.record
            if isinstance(record, OffsetCommit) and self._wanted(record.group):
                self._commit(record, entry.order, now_ms)
            elif isinstance(record, OffsetDeleted):
                self._forget_offset(record.group, (record.topic, record.partition))
            elif isinstance(record, GroupDeleted):
                self._committed.pop(record.group, None)
                self._windows.pop(record.group, None)

    def observe(self, offsets: Mapping[TopicPartitionId, LogOffsets], time_ms: int, *, lookup: bool = True) -> None:
        """High watermarks sampled at `time_ms`: into every group's window on the partition and (with `lookup`) its
        lookup table, which a sample taken only so that first commits are not dropped would skew."""
        for tp, log_offsets in offsets.items():
            self._log[tp] = log_offsets
            table = self._tables.setdefault(tp, LookupTable(self._table_size))
            if lookup:
                table.add(log_offsets.latest, time_ms)
            for windows in self._windows.values():
                if tp in windows:
                    windows[tp].observe_high_watermark(log_offsets.latest)

    def snapshot(self, now_ms: int, event_lag: EventLag) -> LagSnapshot:
        groups = tuple(self._group_lag(g, now_ms, event_lag) for g in sorted(self._committed))
        return LagSnapshot(time_ms=now_ms, groups=groups, log_offsets=dict(self._log))

    def _wanted(self, group: str) -> bool:
        return self.only is None or group in self.only

    def _commit(self, record: OffsetCommit, order: int, now_ms: int) -> None:
        tp = (record.topic, record.partition)
        self._committed.setdefault(record.group, {})[tp] = record
        windows = self._windows.setdefault(record.group, {})
        window = windows.get(tp)
        if window is None:
            window = windows[tp] = PartitionWindow(record.topic, record.partition, self.config)
            if tp in self._log:  # the partition's high watermark is known before this group's first commit on it
                window.observe_high_watermark(self._log[tp].latest)
        window.commit(offset=record.offset, order=order, timestamp_ms=record.commit_timestamp_ms,
                      observed_ms=now_ms, now_ms=now_ms)

    def _forget_offset(self, group: str, tp: TopicPartitionId) -> None:
        self._committed.get(group, {}).pop(tp, None)
        self._windows.get(group, {}).pop(tp, None)
        if group in self._committed and not self._committed[group]:
            # Kafka deletes a group's offsets when it deletes the group or they expire: nothing is left to report
            del self._committed[group]
            self._windows.pop(group, None)

    def _group_lag(self, group: str, now_ms: int, event_lag: EventLag) -> GroupLag:
        windows = {tp: w for tp, w in self._windows[group].items() if tp in self._log}
        status = evaluate(list(windows.values()), now_ms)
        by_partition = {(p.topic, p.partition): p.status for p in status.partitions}
        rows = tuple(
            self._partition_lag(commit, by_partition.get(tp, status.status), now_ms, event_lag)
            for tp, commit in sorted(self._committed[group].items()) if tp in self._log
        )
        known_s = [r.lag_s for r in rows if not math.isnan(r.lag_s)]
        return GroupLag(group=group, status=status.status, complete=status.complete,
                        total_lag=sum(r.lag for r in rows), max_lag=max((r.lag for r in rows), default=0),
                        max_lag_s=max(known_s, default=math.nan), partitions=rows)

    def _partition_lag(self, commit: OffsetCommit, status: Status, now_ms: int, event_lag: EventLag) -> PartitionLag:
        tp = (commit.topic, commit.partition)
        log_offsets = self._log[tp]
        return PartitionLag(
            group=commit.group, topic=commit.topic, partition=commit.partition, committed=commit.offset,
            commit_timestamp_ms=commit.commit_timestamp_ms, high_watermark=log_offsets.latest,
            earliest=log_offsets.earliest, lag=max(log_offsets.latest - commit.offset, 0),
            lag_s=time_lag_s(self._tables[tp], commit.offset, now_ms),
            event_lag_s=event_lag(commit.topic, commit.partition, commit.offset, log_offsets),
            status=status,
        )
