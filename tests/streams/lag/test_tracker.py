"""The tracker without a broker: commits, tombstones and samples in, lags and statuses out.

All offsets and times here are SYNTHETIC; test_lag_broker.py drives the same code with a real broker.
"""

from __future__ import annotations

import math

from streams.lag.cluster import LogOffsets, OffsetsEntry
from streams.lag.evaluator import LagConfig, Status
from streams.lag.offsets_topic import GroupDeleted, OffsetCommit, OffsetDeleted
from streams.lag.tracker import LagTracker

TP = ("market.trades", 0)


def _commit(order: int, offset: int, at_ms: int, group: str = "g") -> OffsetsEntry:
    return OffsetsEntry(order=order, record=OffsetCommit(
        group=group, topic=TP[0], partition=TP[1], offset=offset, leader_epoch=-1, metadata="",
        commit_timestamp_ms=at_ms, expire_timestamp_ms=-1))


def _no_event_time(topic: str, partition: int, committed: int, log: LogOffsets) -> float | None:
    return None


def _round(tracker: LagTracker, entries: list[OffsetsEntry], hwm: int, now_ms: int) -> None:
    """The monitor's order: commits first (judged against the previous sample), then the new sample."""
    if tracker.unsampled(entries):
        tracker.observe({TP: LogOffsets(0, hwm)}, now_ms - 1, lookup=False)
    tracker.apply(entries, now_ms)
    tracker.observe({TP: LogOffsets(0, hwm)}, now_ms)


def test_a_consumer_falling_behind_is_warn_with_offset_and_time_lag() -> None:
    tracker = LagTracker(LagConfig(intervals=5))
    for k in range(8):  # the log grows 100 a second, the consumer 20
        _round(tracker, [_commit(k, 20 * k, 1000 * k)] if k else [], hwm=100 * k, now_ms=1000 * k + 10)
    group = tracker.snapshot(7010, _no_event_time).group("g")
    assert group is not None and group.status is Status.WARN
    (row,) = group.partitions
    assert (row.committed, row.high_watermark, row.lag, row.status) == (140, 700, 560, Status.WARN)
    # the log end was at 140 at 1.4 s (interpolated between the samples at 1.01 s and 2.01 s)
    assert math.isclose(row.lag_s, 7.010 - 1.410)
    assert row.event_lag_s is None and group.max_lag == group.total_lag == 560


def test_a_commit_is_judged_against_the_watermark_sampled_before_it() -> None:
    tracker = LagTracker(LagConfig(intervals=3))
    _round(tracker, [], hwm=0, now_ms=0)
    for k in range(1, 4):  # caught up each time: it commits what the previous sample showed, and more
        _round(tracker, [_commit(k, 100 * k, 1000 * k)], hwm=100 * k + 50, now_ms=1000 * k + 10)
    group = tracker.snapshot(3010, _no_event_time).group("g")
    assert group is not None and group.status is Status.OK and group.partitions[0].lag == 50


def test_an_offset_tombstone_removes_the_partition_and_the_group_with_its_last_one() -> None:
    tracker = LagTracker()
    _round(tracker, [_commit(1, 10, 1000), _commit(2, 10, 1000, group="other")], hwm=20, now_ms=1010)
    tracker.apply([OffsetsEntry(order=3, record=OffsetDeleted(group="g", topic=TP[0], partition=TP[1]))], 1020)
    assert tracker.groups == {"other"}
    tracker.apply([OffsetsEntry(order=4, record=GroupDeleted(group="other"))], 1030)
    assert tracker.groups == set() and tracker.snapshot(1040, _no_event_time).groups == ()


def test_only_the_groups_asked_for_are_tracked() -> None:
    tracker = LagTracker(groups=["other"])
    tracker.observe({TP: LogOffsets(0, 20)}, 1000)
    tracker.apply([_commit(1, 10, 1000), _commit(2, 5, 1000, group="other")], 1010)
    snapshot = tracker.snapshot(1010, lambda *_: 0.25)
    assert [g.group for g in snapshot.groups] == ["other"]
    assert snapshot.groups[0].partitions[0].event_lag_s == 0.25
    assert math.isnan(snapshot.groups[0].partitions[0].lag_s)  # one sample of that watermark so far: too few
