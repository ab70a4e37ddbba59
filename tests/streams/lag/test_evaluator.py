"""Burrow's lag rules, ported case by case, then the window and a few cases of our own.

Ported from linkedin/Burrow at commit ced55ba90f6b833a45a124d411fd5eef63a70933:
core/internal/evaluator/caching_test.go (every rule case and every status-producing request case) and the window
cases of core/internal/storage/inmemory_test.go. Each test id names the Burrow test and case index it comes from;
tests not from Burrow say so. Burrow's `timeNow` is in seconds; ours is `now_ms`, so ported times are multiplied by
1000. Burrow's "no rewind" index -1 is None here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from streams.lag.evaluator import (
    BURROW_COMMIT,
    GroupStatus,
    LagConfig,
    OffsetSample,
    PartitionStatus,
    PartitionWindow,
    Status,
    classify,
    evaluate,
    evaluate_group,
    evaluate_partition,
    group_expired,
    lag_always_above,
    lag_not_decreasing,
    offsets_stalled,
    offsets_stopped,
    recent_lag_zero,
    rewind_index,
    rewind_recovered,
)

NOW_MS = 1_700_000_000_000


def burrow(*rows: tuple[int, int, int, int | None]) -> tuple[OffsetSample, ...]:
    """Samples from Burrow's (Offset, Order, Timestamp, Lag) rows."""
    return tuple(OffsetSample(offset=o, order=n, timestamp_ms=t, observed_ms=0, lag=lag) for o, n, t, lag in rows)


@dataclass(frozen=True)
class RuleCase:
    """One entry of Burrow's `tests` table: the inputs, what each rule returns, and the status."""

    samples: tuple[OffsetSample, ...]
    high_watermarks: tuple[int, ...]
    current_lag: int
    now_s: int
    allowed_lag: int
    lag_always_above: bool
    rewind_index: int | None
    stopped: bool
    stalled: bool
    lag_not_decreasing: bool
    recent_lag_zero: bool
    status: Status


RISING = burrow(
    (1000, 1, 100000, 0), (2000, 2, 200000, 50), (3000, 3, 300000, 100), (4000, 4, 400000, 150), (5000, 5, 500000, 200)
)
RISING_FROM_50 = burrow(
    (1000, 1, 100000, 50),
    (2000, 2, 200000, 100),
    (3000, 3, 300000, 150),
    (4000, 4, 400000, 200),
    (5000, 5, 500000, 250),
)
STUCK_FROM_0 = burrow(
    (1000, 1, 100000, 0), (1000, 2, 200000, 50), (1000, 3, 300000, 100), (1000, 4, 400000, 150), (1000, 5, 500000, 200)
)
STUCK_FROM_100 = burrow(
    (1000, 1, 100000, 100),
    (1000, 2, 200000, 150),
    (1000, 3, 300000, 200),
    (1000, 4, 400000, 250),
    (1000, 5, 500000, 300),
)
STUCK_AT_100 = burrow(
    (1000, 1, 100000, 100),
    (1000, 2, 200000, 100),
    (1000, 3, 300000, 100),
    (1000, 4, 400000, 100),
    (1000, 5, 500000, 100),
)
REWOUND_AND_PASSED = burrow(
    (1000, 1, 100000, 100),
    (2000, 2, 200000, 150),
    (3000, 3, 300000, 200),
    (2000, 4, 400000, 1250),
    (4000, 5, 500000, 300),
)
REWOUND_NOT_BACK = burrow(
    (1000, 1, 100000, 100),
    (2000, 2, 200000, 150),
    (3000, 3, 300000, 200),
    (2000, 4, 400000, 1250),
    (2500, 5, 500000, 300),
)
# Burrow issue #290/#303: one commit a second, always caught up when committed
CAUGHT_UP_EACH_SECOND = burrow(
    *(
        (792748079 + i, 1 + i, ts, 0)
        for i, ts in enumerate(
            (
                1512224618356,
                1512224619362,
                1512224620366,
                1512224621367,
                1512224622370,
                1512224623373,
                1512224624378,
                1512224625379,
                1512224626383,
                1512224627383,
                1512224628383,
                1512224629388,
                1512224630391,
                1512224631394,
                1512224632397,
            )
        )
    )
)
WITH_UNKNOWN_LAGS = burrow(
    (1000, 10, 100000, 0),
    (1500, 15, 150000, None),
    (2000, 20, 200000, 50),
    (2500, 25, 250000, None),
    (3000, 30, 300000, 100),
    (3500, 35, 350000, None),
    (4000, 40, 400000, 150),
    (4500, 45, 450000, None),
    (5000, 50, 500000, 200),
    (5500, 55, 550000, None),
)

# fmt: off
CHECK_RULES = {
    "0-ok-zero-lag-somewhere":
        RuleCase(RISING, (5200,), 200, 600, 0, False, None, False, False, True, False, Status.OK),
    "1-ok-silence-equal-to-span-is-not-stop":
        RuleCase(RISING, (5200,), 200, 900, 0, False, None, False, False, True, False, Status.OK),
    "2-stop-silence-longer-than-span-despite-zero-lag":
        RuleCase(RISING, (5200,), 200, 1000, 0, False, None, True, False, True, False, Status.STOP),
    "3-stop-lag-always-non-zero":
        RuleCase(RISING_FROM_50, (5250,), 250, 1000, 0, True, None, True, False, True, False, Status.STOP),
    "4-ok-stuck-offsets-but-zero-lag":
        RuleCase(STUCK_FROM_0, (1200,), 200, 600, 0, False, None, False, True, True, False, Status.OK),
    "5-stall-stuck-offsets-lag-non-zero":
        RuleCase(STUCK_FROM_100, (1300,), 300, 600, 0, True, None, False, True, True, False, Status.STALL),
    "6-stall-stuck-offsets-lag-constant":
        RuleCase(STUCK_AT_100, (1100,), 100, 600, 0, True, None, False, True, True, False, Status.STALL),
    "7-ok-rewind-recovered-lag-decreases":
        RuleCase(REWOUND_AND_PASSED, (4300,), 300, 600, 0, True, 3, False, False, False, False, Status.OK),
    "8-ok-current-lag-zero-though-stopped":
        RuleCase(RISING_FROM_50, (5250,), 0, 1000, 0, True, None, True, False, True, False, Status.OK),
    "9-stop-new-data-after-always-caught-up":
        RuleCase(CAUGHT_UP_EACH_SECOND, (792749024, 792749000, 792748800, 792748600, 792748500), 931, 1512224650, 0,
                 False, None, True, False, True, False, Status.STOP),
    "10-ok-recent-high-watermark-reached":
        RuleCase(CAUGHT_UP_EACH_SECOND, (792748094, 792748093, 792748093, 792748093), 1, 1512224650, 0,
                 False, None, True, False, True, True, Status.OK),
    "11-ok-as-0-with-unknown-lags":
        RuleCase(WITH_UNKNOWN_LAGS, (5700,), 200, 600, 0, False, None, False, False, True, False, Status.OK),
    "12-ok-within-allowed-lag":
        RuleCase(burrow((1000, 1, 100000, 2), (2000, 2, 200000, 1), (2000, 2, 300000, 1)), (2001,), 1, 550, 1,
                 False, None, True, False, False, False, Status.OK),
    "13-stall-as-5-with-allowed-lag":
        RuleCase(STUCK_FROM_100, (1300,), 300, 600, 99, True, None, False, True, True, False, Status.STALL),
    "14-ok-as-7-with-allowed-lag":
        RuleCase(REWOUND_AND_PASSED, (4300,), 300, 600, 99, True, 3, False, False, False, False, Status.OK),
    "15-rewind-not-back-to-previous-offset":
        RuleCase(REWOUND_NOT_BACK, (4300,), 300, 600, 0, True, 3, False, False, False, False, Status.REWIND),
}
# fmt: on


@pytest.mark.parametrize("case", CHECK_RULES.values(), ids=[f"CheckRules-{k}" for k in CHECK_RULES])
def test_check_rules(case: RuleCase) -> None:
    """Burrow's TestCachingEvaluator_CheckRules: every rule's answer, then the status they add up to."""
    now_ms = case.now_s * 1000
    assert lag_always_above(case.samples, case.allowed_lag) is case.lag_always_above
    assert rewind_index(case.samples) == case.rewind_index
    assert offsets_stopped(case.samples, now_ms) is case.stopped
    assert offsets_stalled(case.samples) is case.stalled
    assert lag_not_decreasing(case.samples) is case.lag_not_decreasing
    assert recent_lag_zero(case.samples, case.high_watermarks) is case.recent_lag_zero
    status = classify(
        case.samples,
        high_watermarks=case.high_watermarks,
        current_lag=case.current_lag,
        now_ms=now_ms,
        allowed_lag=case.allowed_lag,
    )
    assert status is case.status


def test_rewind_recovered_of_cases_7_and_15() -> None:
    """Burrow checks recovery only inside calculatePartitionStatus; cases 7 and 15 differ only by it."""
    assert rewind_recovered(REWOUND_AND_PASSED, 3)
    assert not rewind_recovered(REWOUND_NOT_BACK, 3)


def test_burrow_commit_matches_the_port() -> None:
    assert __doc__ is not None
    assert BURROW_COMMIT in __doc__


# Burrow's evaluator request tests, on the storage fixture CoordinatorWithOffsets: intervals 10, min-distance 0, one
# partition whose high watermark is 4321; "testgroup" commits offsets 1000..1900 every 10 s from now-100 s (a full
# window), "testgroup2" commits 1000..1400 (half a window) and then goes quiet.


def fixture_window(commits: int) -> PartitionWindow:
    window = PartitionWindow("testtopic", 0, LagConfig(intervals=10, min_distance_s=0))
    window.observe_high_watermark(4321)
    start_ms = NOW_MS - 100_000
    for i in range(commits):
        stored = window.commit(
            offset=1000 + i * 100, order=10 + i, timestamp_ms=start_ms + i * 10_000, observed_ms=NOW_MS, now_ms=NOW_MS
        )
        assert stored
    return window


def test_start_unknown_group_is_not_found() -> None:
    """TestCachingEvaluator_Start: a group that does not exist is NOTFOUND (and shaped as Burrow's 404 reply)."""
    status = GroupStatus.not_found()
    assert status.status is Status.NOTFOUND
    assert (status.complete, status.partitions, status.max_lag, status.total_lag) == (1.0, (), None, 0)


@pytest.mark.parametrize("show_all", [False, True], ids=["SingleRequest_NoShowAll", "SingleRequest_ShowAll"])
def test_single_request(show_all: bool) -> None:
    """TestCachingEvaluator_SingleRequest_NoShowAll / _ShowAll: a full, progressing window is OK."""
    status = evaluate([fixture_window(10)], NOW_MS)
    assert status.status is Status.OK
    assert status.complete == 1.0
    assert status.total_partitions == 1
    assert status.total_lag == 2421
    shown = status.partitions if show_all else status.not_ok()
    assert len(shown) == (1 if show_all else 0)


def test_single_request_incomplete() -> None:
    """TestCachingEvaluator_SingleRequest_Incomplete: half a window, silent longer than it spans: STOP, group ERR."""
    status = evaluate([fixture_window(5)], NOW_MS)
    assert status.status is Status.ERR
    assert status.complete == 0.0
    assert status.total_partitions == 1
    assert status.total_lag == 2921
    assert len(status.not_ok()) == 1
    partition = status.partitions[0]
    assert partition.complete == 0.5
    assert partition.status is Status.STOP
    assert status.max_lag is not None
    assert status.max_lag.start is not None and status.max_lag.start.offset == 1000
    assert status.max_lag.end is not None and status.max_lag.end.offset == 1400


def test_topic_deleted() -> None:
    """TestCachingEvaluator_TopicDeleted: a known group with no partitions left is OK, complete 0.0, no partitions."""
    status = evaluate([], NOW_MS)
    assert status.status is Status.OK
    assert status.partitions == ()
    assert status.complete == 0.0


# Burrow's storage tests (inmemory_test.go): how the window keeps commits. Its test fixture sets min-distance 1 s.

WINDOW_CONFIG = LagConfig(intervals=10, min_distance_s=1)
BASE_MS = NOW_MS - 100_000


def stored(partition_offset: int, inputs: tuple[OffsetSample, ...]) -> tuple[OffsetSample, ...]:
    window = PartitionWindow("testtopic", 0, WINDOW_CONFIG)
    window.observe_high_watermark(partition_offset)
    for s in inputs:
        window.commit(
            offset=s.offset, order=s.order, timestamp_ms=BASE_MS + s.timestamp_ms, observed_ms=0, now_ms=NOW_MS
        )
    return tuple(
        OffsetSample(offset=s.offset, order=s.order, timestamp_ms=s.timestamp_ms - BASE_MS, observed_ms=0, lag=s.lag)
        for s in window.samples
    )


TENS = tuple((1000 * i, 10 * i, 100000 * i, None) for i in range(1, 11))
TENS_STORED = tuple((1000 * i, 10 * i, 100000 * i, 10000 - 1000 * i) for i in range(2, 11))

# fmt: off
OFFSET_CASES = {
    "0-appending": (
        5000,
        burrow(*((1000 * i, i, 100000 * i, None) for i in range(1, 6))),
        burrow(*((1000 * i, i, 100000 * i, 5000 - 1000 * i) for i in range(1, 6))),
    ),
    "1-prepending-until-full": (
        5000,
        burrow((1000, 20, 100000, None), (2000, 30, 200000, None), (3000, 15, 300000, None),
               *((100 * o - 500, o, 300000, None) for o in range(14, 5, -1))),
        burrow(*((100 * o - 500, o, 300000, None) for o in range(8, 15)), (3000, 15, 300000, None),
               (1000, 20, 100000, 4000), (2000, 30, 200000, 3000)),
    ),
    "2-inserting-between": (
        5000,
        burrow((1000, 20, 100000, None), (2000, 30, 300000, None), (3000, 40, 400000, None),
               (1500, 25, 200000, None)),
        burrow((1000, 20, 100000, 4000), (1500, 25, 200000, None), (2000, 30, 300000, 3000),
               (3000, 40, 400000, 2000)),
    ),
    "3-inserting-when-full": (
        10000,
        burrow(*TENS, (5500, 55, 550000, None)),
        burrow(*TENS_STORED[:4], (5500, 55, 550000, None), *TENS_STORED[4:]),
    ),
    "4-replacing-oldest-when-full": (
        10000,
        burrow(*TENS, (1500, 15, 150000, None)),
        burrow((1500, 15, 150000, None), *TENS_STORED),
    ),
    "5-frequent-commit-replaces-newest": (
        10000,
        burrow(*TENS[:5], (6000, 60, 500001, None)),
        burrow(*((1000 * i, 10 * i, 100000 * i, 10000 - 1000 * i) for i in range(1, 5)), (6000, 60, 500000, 4000)),
    ),
    "6-frequent-commit-replaces-previous": (
        10000,
        burrow(*TENS[:5], (4500, 45, 400001, None)),
        burrow(*((1000 * i, 10 * i, 100000 * i, 10000 - 1000 * i) for i in range(1, 4)), (4500, 45, 400000, None),
               (5000, 50, 500000, 5000)),
    ),
}
# fmt: on


@pytest.mark.parametrize("case", OFFSET_CASES.values(), ids=[f"addConsumerOffset_testCases-{k}" for k in OFFSET_CASES])
def test_add_consumer_offset_cases(case: tuple[int, tuple[OffsetSample, ...], tuple[OffsetSample, ...]]) -> None:
    """TestInMemoryStorage_addConsumerOffset_testCases: appending, late commits by order, min-distance merges."""
    partition_offset, inputs, outputs = case
    assert stored(partition_offset, inputs) == outputs


def storage_fixture_window() -> PartitionWindow:
    """Burrow's startWithTestConsumerOffsets: high watermark 4321, ten commits 10 s apart from BASE_MS."""
    window = PartitionWindow("testtopic", 0, WINDOW_CONFIG)
    window.observe_high_watermark(4321)
    for i in range(10):
        window.commit(
            offset=1000 + i * 100, order=500 + i, timestamp_ms=BASE_MS + i * 10_000, observed_ms=0, now_ms=NOW_MS
        )
    return window


def test_add_consumer_offset_advances_a_full_window() -> None:
    """TestInMemoryStorage_addConsumerOffset: an eleventh commit pushes the oldest out."""
    window = storage_fixture_window()
    assert window.commit(offset=2000, order=1000, timestamp_ms=BASE_MS + 100_000, observed_ms=0, now_ms=NOW_MS)
    assert [(s.offset, s.timestamp_ms, s.lag) for s in window.samples] == [
        (1100 + i * 100, BASE_MS + 10_000 + i * 10_000, 4321 - (1100 + i * 100)) for i in range(10)
    ]


def test_add_consumer_offset_min_distance() -> None:
    """TestInMemoryStorage_addConsumerOffset_MinDistance: a commit 1 ms after the last replaces it, keeping its time."""
    window = storage_fixture_window()
    assert window.commit(offset=2000, order=1000, timestamp_ms=BASE_MS + 90_001, observed_ms=0, now_ms=NOW_MS)
    expected = [(1000 + i * 100, BASE_MS + i * 10_000) for i in range(9)] + [(2000, BASE_MS + 90_000)]
    assert [(s.offset, s.timestamp_ms) for s in window.samples] == expected
    assert [s.lag for s in window.samples] == [4321 - offset for offset, _ in expected]


def test_add_consumer_offset_too_old() -> None:
    """TestInMemoryStorage_addConsumerOffset_TooOld: commits older than expire-group are dropped."""
    window = PartitionWindow("testtopic", 0, WINDOW_CONFIG)
    window.observe_high_watermark(4321)
    assert not window.commit(offset=1000, order=500, timestamp_ms=1_000_000, observed_ms=0, now_ms=NOW_MS)
    assert window.samples == ()


def test_add_consumer_offset_bad_broker_offset() -> None:
    """TestInMemoryStorage_addConsumerOffset_BadBrokerOffset: no high watermark seen yet, so no lag: dropped."""
    window = PartitionWindow("notopic", 0, WINDOW_CONFIG)
    assert not window.commit(offset=3434, order=1, timestamp_ms=NOW_MS, observed_ms=0, now_ms=NOW_MS)
    assert window.samples == ()


def test_fetch_consumer_current_lag() -> None:
    """TestInMemoryStorage_fetchConsumer: current lag is the latest high watermark minus the last commit."""
    window = storage_fixture_window()
    assert window.current_lag == 2421
    assert [s.lag for s in window.samples] == [4321 - (1000 + i * 100) for i in range(10)]


def test_fetch_consumer_expired() -> None:
    """TestInMemoryStorage_fetchConsumer_Expired: a group whose last commit is older than expire-group is NOTFOUND."""
    window = storage_fixture_window()
    later_ms = BASE_MS + 90_000 + WINDOW_CONFIG.expire_group_s * 1000 + 1
    assert group_expired([window], later_ms)
    assert evaluate([window], later_ms).status is Status.NOTFOUND
    assert not group_expired([window], NOW_MS)


def test_configure_defaults() -> None:
    """TestInMemoryStorage_Configure_DefaultIntervals, and Burrow's other defaults."""
    assert LagConfig() == LagConfig(
        intervals=10, min_distance_s=0, expire_group_s=604_800, allowed_lag=0, minimum_complete=0.0
    )


def test_add_broker_offset_add_many() -> None:
    """TestInMemoryStorage_addBrokerOffset_AddMany: only the last `intervals` high watermarks are kept, oldest first."""
    window = PartitionWindow("testtopic", 0, WINDOW_CONFIG)
    for offset in range(4321, 4422):
        window.observe_high_watermark(offset)
    assert window.high_watermarks == tuple(range(4412, 4422))


# Not from Burrow: the window's edges, group combinations, and the two stories operators care about.


def test_window_keeps_at_most_intervals() -> None:
    window = PartitionWindow("t", 0, LagConfig(intervals=3))
    window.observe_high_watermark(100)
    for i in range(5):
        window.commit(offset=i, order=i, timestamp_ms=NOW_MS + i * 1000, observed_ms=0, now_ms=NOW_MS)
    assert [s.offset for s in window.samples] == [2, 3, 4]
    assert window.full and window.complete == 1.0


def test_duplicate_and_too_late_commits_are_dropped() -> None:
    window = PartitionWindow("t", 0, LagConfig(intervals=2))
    window.observe_high_watermark(100)
    assert window.commit(offset=10, order=5, timestamp_ms=NOW_MS, observed_ms=0, now_ms=NOW_MS)
    assert not window.commit(offset=10, order=5, timestamp_ms=NOW_MS, observed_ms=0, now_ms=NOW_MS)
    assert window.commit(offset=20, order=6, timestamp_ms=NOW_MS + 1000, observed_ms=0, now_ms=NOW_MS)
    assert not window.commit(offset=5, order=4, timestamp_ms=NOW_MS - 1000, observed_ms=0, now_ms=NOW_MS)
    assert [s.order for s in window.samples] == [5, 6]


def test_late_commit_replacing_the_oldest_never_merges() -> None:
    """In Burrow it takes the oldest's ring slot, whose predecessor is the newest commit, so min-distance is moot."""
    window = PartitionWindow("t", 0, LagConfig(intervals=3, min_distance_s=100))
    window.observe_high_watermark(1000)
    for order, ts_s in ((10, 0), (20, 200), (30, 400)):
        window.commit(offset=order, order=order, timestamp_ms=NOW_MS + ts_s * 1000, observed_ms=0, now_ms=NOW_MS)
    assert window.commit(offset=15, order=15, timestamp_ms=NOW_MS + 1000, observed_ms=0, now_ms=NOW_MS)
    assert [(s.order, s.timestamp_ms - NOW_MS, s.lag) for s in window.samples] == [
        (15, 1000, None),
        (20, 200_000, 980),
        (30, 400_000, 970),
    ]


def test_min_distance_zero_merges_only_a_commit_whose_time_went_backwards() -> None:
    window = PartitionWindow("t", 0, LagConfig(min_distance_s=0))
    window.observe_high_watermark(1000)
    window.commit(offset=10, order=1, timestamp_ms=NOW_MS, observed_ms=0, now_ms=NOW_MS)
    window.commit(offset=20, order=2, timestamp_ms=NOW_MS, observed_ms=0, now_ms=NOW_MS)
    window.commit(offset=30, order=3, timestamp_ms=NOW_MS - 1, observed_ms=0, now_ms=NOW_MS)
    assert [(s.offset, s.timestamp_ms) for s in window.samples] == [(10, NOW_MS), (30, NOW_MS)]


def test_minimum_complete_gates_the_rules() -> None:
    """One commit with lag, then silence, is STOP (now minus last exceeds a zero span) unless the window must fill."""
    for minimum_complete, expected in ((0.0, Status.STOP), (0.5, Status.OK)):
        window = PartitionWindow("t", 0, LagConfig(minimum_complete=minimum_complete))
        window.observe_high_watermark(500)
        window.commit(offset=100, order=1, timestamp_ms=NOW_MS, observed_ms=0, now_ms=NOW_MS)
        assert evaluate_partition(window, NOW_MS + 1).status is expected


def test_empty_window_is_ok_and_incomplete() -> None:
    status = evaluate_partition(PartitionWindow("t", 3), NOW_MS)
    assert (status.status, status.complete, status.current_lag, status.start, status.end) == (
        Status.OK,
        0.0,
        0,
        None,
        None,
    )


def partition(status: Status, lag: int = 0, complete: float = 1.0, number: int = 0) -> PartitionStatus:
    return PartitionStatus(
        topic="t", partition=number, status=status, current_lag=lag, complete=complete, start=None, end=None
    )


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((Status.OK, Status.OK), Status.OK),
        ((Status.OK, Status.WARN), Status.WARN),
        ((Status.WARN, Status.STOP), Status.ERR),
        ((Status.OK, Status.STALL), Status.ERR),
        ((Status.REWIND, Status.WARN), Status.ERR),
        ((Status.STOP, Status.STALL, Status.REWIND), Status.ERR),
    ],
)
def test_group_status_is_worst_partition_capped_at_err(statuses: tuple[Status, ...], expected: Status) -> None:
    assert evaluate_group(partition(s, number=i) for i, s in enumerate(statuses)).status is expected


def test_group_totals_max_lag_and_complete() -> None:
    parts = [partition(Status.OK, 5, 1.0, 0), partition(Status.WARN, 9, 0.5, 1), partition(Status.OK, 9, 1.0, 2)]
    status = evaluate_group(parts)
    assert status.total_lag == 23
    assert status.max_lag is parts[1]  # ties keep the first seen
    assert status.complete == pytest.approx(2 / 3)
    assert status.not_ok() == (parts[1],)


def burst(lags_after_commit: list[int]) -> PartitionWindow:
    """A consumer committing every 10 s, always moving forward, while producers run `lags_after_commit` ahead."""
    window = PartitionWindow("t", 0)
    offset = 10_000
    for i, lag in enumerate(lags_after_commit):
        offset += 1_000
        window.observe_high_watermark(offset + lag)
        window.commit(offset=offset, order=i, timestamp_ms=NOW_MS + i * 10_000, observed_ms=0, now_ms=NOW_MS)
    return window


def test_catching_up_after_a_burst_is_never_err() -> None:
    """Not from Burrow. Lag rising during a burst then falling, offsets moving: OK once it falls, WARN while rising."""
    end_ms = NOW_MS + 10 * 10_000
    falling = burst([100, 800, 2000, 3500, 4000, 3600, 2900, 2000, 1200, 600])
    assert evaluate_partition(falling, end_ms).status is Status.OK
    rising = burst([100, 800, 2000, 3500, 4000, 4000, 4200, 4300, 4600, 5000])
    assert evaluate_partition(rising, end_ms).status is Status.WARN
    assert evaluate([falling, rising], end_ms).status is Status.WARN


def test_stopped_consumer_is_stop_and_group_err() -> None:
    """Not from Burrow. Commits stop while producers go on: STOP once the silence outlasts the window's span and the
    last commit is behind every recent high watermark."""
    window = burst([1000 - 100 * i for i in range(10)])  # catching up, span 90 s, last commit at offset 20000, +90 s
    last_offset = window.samples[-1].offset
    assert evaluate_partition(window, NOW_MS + 180_001).status is Status.OK  # it passed high watermarks seen recently
    for i in range(10):  # ten more refreshes while producers keep writing
        window.observe_high_watermark(last_offset + 1_000 * (i + 1))
    assert evaluate_partition(window, NOW_MS + 180_000).status is Status.OK  # silent 90 s: not longer than the span
    assert evaluate_partition(window, NOW_MS + 180_001).status is Status.STOP
    assert evaluate([window], NOW_MS + 180_001).status is Status.ERR


@pytest.mark.parametrize(
    "bad",
    [{"intervals": 0}, {"min_distance_s": -1}, {"expire_group_s": -1}, {"allowed_lag": -1}, {"minimum_complete": 1.5}],
)
def test_config_rejects_bad_values(bad: dict[str, int | float]) -> None:
    with pytest.raises(ValueError):
        LagConfig(**bad)  # type: ignore[arg-type]


def test_status_prints_burrow_names() -> None:
    assert [str(s) for s in Status] == ["NOTFOUND", "OK", "WARN", "ERR", "STOP", "STALL", "REWIND"]
