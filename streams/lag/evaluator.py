"""Burrow's consumer-lag evaluator: a window of each partition's last commits, and a status read from its trend.

A Python reimplementation of the rules of linkedin/Burrow (`core/internal/evaluator/caching.go`, windows as kept by
`core/internal/storage/inmemory.go`) at commit ced55ba90f6b833a45a124d411fd5eef63a70933; docs/lag.md states them.
No I/O and no clock: the caller feeds commits and high watermarks and passes `now_ms`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise

__all__ = [
    "BURROW_COMMIT",
    "GroupStatus",
    "LagConfig",
    "OffsetSample",
    "PartitionStatus",
    "PartitionWindow",
    "Status",
    "classify",
    "evaluate",
    "evaluate_group",
    "evaluate_partition",
    "group_expired",
    "lag_always_above",
    "lag_not_decreasing",
    "offsets_stalled",
    "offsets_stopped",
    "recent_lag_zero",
    "rewind_index",
    "rewind_recovered",
]

BURROW_COMMIT = "ced55ba90f6b833a45a124d411fd5eef63a70933"


class Status(IntEnum):
    """Ordered from least to most bad, as Burrow's; the group status is the worst partition's, capped at ERR.

    NOTFOUND and ERR are only group statuses; STOP, STALL and REWIND only partition statuses.
    """

    NOTFOUND = 0
    OK = 1
    WARN = 2
    ERR = 3
    STOP = 4
    STALL = 5
    REWIND = 6

    def __str__(self) -> str:
        return self.name  # Burrow's wire strings are exactly these names


@dataclass(frozen=True, slots=True, kw_only=True)
class LagConfig:
    """Burrow's storage (`intervals`, `min-distance`, `expire-group`) and evaluator (`allowed-lag`,
    `minimum-complete`) settings, with Burrow's defaults."""

    intervals: int = 10  # commits (and high watermarks) kept per partition
    min_distance_s: int = 0  # a commit closer than this (commit time) to the one before replaces it; 0 = never
    expire_group_s: int = 604_800  # commits older than this are dropped; a group silent this long is NOTFOUND
    allowed_lag: int = 0  # lag at or below this counts as caught up
    minimum_complete: float = 0.0  # a window less full than this fraction is OK without checks

    def __post_init__(self) -> None:
        if self.intervals < 1:
            raise ValueError(f"intervals must be at least 1, not {self.intervals}")
        if self.min_distance_s < 0 or self.expire_group_s < 0 or self.allowed_lag < 0:
            raise ValueError("min_distance_s, expire_group_s and allowed_lag must not be negative")
        if not 0.0 <= self.minimum_complete <= 1.0:
            raise ValueError(f"minimum_complete must be within [0, 1], not {self.minimum_complete}")


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetSample:
    """One stored commit (Burrow's ConsumerOffset)."""

    offset: int  # the committed offset
    order: int  # the commit's position in __consumer_offsets, or any sequence increasing with commit order
    timestamp_ms: int  # when the consumer committed
    observed_ms: int  # when we saw the commit
    lag: int | None  # high watermark minus offset when stored; None for a late (out-of-order) commit


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionStatus:
    """Burrow's PartitionStatus, without owner and client id."""

    topic: str
    partition: int
    status: Status
    current_lag: int  # latest high watermark minus last committed offset, at least 0
    complete: float  # how full the window is, 0.0 to 1.0
    start: OffsetSample | None  # oldest commit kept
    end: OffsetSample | None  # newest commit kept

    @property
    def is_complete(self) -> bool:
        return self.complete == 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStatus:
    """Burrow's ConsumerGroupStatus: the worst partition (capped at ERR), total lag, the most lagging partition."""

    status: Status
    complete: float  # fraction of partitions whose window is full
    partitions: tuple[PartitionStatus, ...]
    max_lag: PartitionStatus | None
    total_lag: int

    @property
    def total_partitions(self) -> int:
        return len(self.partitions)

    def not_ok(self) -> tuple[PartitionStatus, ...]:
        """The partitions worth showing an operator (Burrow's reply without `showall`)."""
        return tuple(p for p in self.partitions if p.status > Status.OK)

    @classmethod
    def not_found(cls) -> GroupStatus:
        """An unknown or expired group, shaped as Burrow's 404 reply."""
        return cls(status=Status.NOTFOUND, complete=1.0, partitions=(), max_lag=None, total_lag=0)


class PartitionWindow:
    """One group's last commits on one partition, oldest first by `order`, and the partition's last high watermarks."""

    def __init__(self, topic: str, partition: int, config: LagConfig | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.config = config or LagConfig()
        self._samples: list[OffsetSample] = []
        self._high_watermarks: deque[int] = deque(maxlen=self.config.intervals)
        self._last_commit_ms: int | None = None

    @property
    def samples(self) -> tuple[OffsetSample, ...]:
        return tuple(self._samples)

    @property
    def high_watermarks(self) -> tuple[int, ...]:
        """Oldest first."""
        return tuple(self._high_watermarks)

    @property
    def last_commit_ms(self) -> int | None:
        """Commit time of the newest in-order commit ever stored (late commits do not count, as in Burrow)."""
        return self._last_commit_ms

    @property
    def full(self) -> bool:
        return len(self._samples) == self.config.intervals

    @property
    def complete(self) -> float:
        return len(self._samples) / self.config.intervals

    @property
    def current_lag(self) -> int:
        # High watermarks are sampled, so the consumer can look ahead of the last one: that is no lag, not negative lag
        if not self._samples or not self._high_watermarks:
            return 0
        return max(self._high_watermarks[-1] - self._samples[-1].offset, 0)

    def observe_high_watermark(self, offset: int) -> None:
        """Record the partition's log end offset; call it on a steady cadence (Burrow's offset refresh)."""
        self._high_watermarks.append(offset)

    def commit(self, *, offset: int, order: int, timestamp_ms: int, observed_ms: int, now_ms: int) -> bool:
        """Store one commit; False when Burrow would drop it (too old, no high watermark yet, duplicate, too late)."""
        if timestamp_ms < now_ms - self.config.expire_group_s * 1000 or not self._high_watermarks:
            return False
        index = bisect_left([s.order for s in self._samples], order)
        if index < len(self._samples) and self._samples[index].order == order:
            return False  # the same commit seen twice
        if self.full and index == 0:
            return False  # older than everything kept: it would be dropped at once
        appended = index == len(self._samples)
        # Lag is only known for the newest commit: the high watermark at a late commit's time was never seen
        lag = max(self._high_watermarks[-1] - offset, 0) if appended else None
        sample = OffsetSample(offset=offset, order=order, timestamp_ms=timestamp_ms, observed_ms=observed_ms, lag=lag)
        self._place(index, sample)
        if appended:
            self._last_commit_ms = timestamp_ms
        return True

    def _place(self, index: int, sample: OffsetSample) -> None:
        if self._merges_into_previous(index, sample):
            # Keep the earlier commit time, so a consumer committing faster than min-distance still fills the window
            previous = self._samples[index - 1]
            self._samples[index - 1] = OffsetSample(
                offset=sample.offset,
                order=sample.order,
                timestamp_ms=previous.timestamp_ms,
                observed_ms=sample.observed_ms,
                lag=sample.lag,
            )
            return
        self._samples.insert(index, sample)
        if len(self._samples) > self.config.intervals:
            del self._samples[0]

    def _merges_into_previous(self, index: int, sample: OffsetSample) -> bool:
        # A late commit landing right after the oldest of a full window takes the oldest's slot outright in Burrow
        # (its ring slot's predecessor is then the newest commit), so it never merges
        if index == 0 or (self.full and index == 1):
            return False
        # Strict "<" as Burrow: with min_distance_s=0 only a commit whose time went backwards merges
        return sample.timestamp_ms - self._samples[index - 1].timestamp_ms < self.config.min_distance_s * 1000


# The rules, oldest sample first. Each takes a non-empty window.


def lag_always_above(samples: Sequence[OffsetSample], allowed_lag: int) -> bool:
    """No commit in the window was caught up (lag at or below `allowed_lag`); unknown lags do not count."""
    return all(s.lag is None or s.lag > allowed_lag for s in samples)


def rewind_index(samples: Sequence[OffsetSample]) -> int | None:
    """Index of the first commit below its predecessor, None if offsets never went backwards."""
    for index in range(1, len(samples)):
        if samples[index].offset < samples[index - 1].offset:
            return index
    return None


def rewind_recovered(samples: Sequence[OffsetSample], index: int) -> bool:
    """Some commit from the rewind on is back at the offset reached before it."""
    reached = samples[index - 1].offset
    return any(s.offset >= reached for s in samples[index:])


def offsets_stopped(samples: Sequence[OffsetSample], now_ms: int) -> bool:
    """Silent for longer than the window spans: now minus last commit exceeds last minus first commit."""
    first_ms, last_ms = samples[0].timestamp_ms, samples[-1].timestamp_ms
    return now_ms - last_ms > last_ms - first_ms


def offsets_stalled(samples: Sequence[OffsetSample]) -> bool:
    """Every commit in the window is at the same offset."""
    return all(s.offset == samples[0].offset for s in samples)


def lag_not_decreasing(samples: Sequence[OffsetSample]) -> bool:
    """No known lag is below the known lag before it (a single drop anywhere clears it)."""
    lags = [s.lag for s in samples if s.lag is not None]
    return all(later >= earlier for earlier, later in pairwise(lags))


def recent_lag_zero(samples: Sequence[OffsetSample], high_watermarks: Sequence[int]) -> bool:
    """The last commit had reached one of the recent high watermarks: the consumer was caught up minutes ago."""
    last_offset = samples[-1].offset
    return any(hwm <= last_offset for hwm in high_watermarks)


def classify(
    samples: Sequence[OffsetSample], *, high_watermarks: Sequence[int], current_lag: int, now_ms: int, allowed_lag: int
) -> Status:
    """Burrow's partition rules, worst first; OK with no samples (nothing to judge)."""
    if not samples or current_lag <= allowed_lag:
        return Status.OK  # caught up now: nothing in the history matters
    # Stopped comes first: a zero-lag commit long ago must not hide a consumer that has since gone silent
    if offsets_stopped(samples, now_ms) and not recent_lag_zero(samples, high_watermarks):
        return Status.STOP
    # Before the zero-lag check: a rewind to earliest from a caught-up state would otherwise read as OK
    rewound = rewind_index(samples)
    if rewound is not None and not rewind_recovered(samples, rewound):
        return Status.REWIND
    if lag_always_above(samples, allowed_lag):
        if offsets_stalled(samples):
            return Status.STALL
        if lag_not_decreasing(samples):
            return Status.WARN
    return Status.OK


def evaluate_partition(window: PartitionWindow, now_ms: int) -> PartitionStatus:
    """The window's status; a window less complete than `minimum_complete` is OK without checks."""
    samples, current_lag = window.samples, window.current_lag
    status = Status.OK
    if samples and window.complete >= window.config.minimum_complete:
        status = classify(
            samples,
            high_watermarks=window.high_watermarks,
            current_lag=current_lag,
            now_ms=now_ms,
            allowed_lag=window.config.allowed_lag,
        )
    return PartitionStatus(
        topic=window.topic,
        partition=window.partition,
        status=status,
        current_lag=current_lag,
        complete=window.complete,
        start=samples[0] if samples else None,
        end=samples[-1] if samples else None,
    )


def evaluate_group(partitions: Iterable[PartitionStatus]) -> GroupStatus:
    """Worst partition status capped at ERR, summed lag, the first partition with the largest lag."""
    ordered = tuple(partitions)
    worst = max((p.status for p in ordered), default=Status.OK)
    max_lag: PartitionStatus | None = None
    for p in ordered:
        if max_lag is None or p.current_lag > max_lag.current_lag:
            max_lag = p
    complete = sum(p.is_complete for p in ordered) / len(ordered) if ordered else 0.0
    return GroupStatus(
        status=min(worst, Status.ERR),  # STOP, STALL and REWIND all read as ERR for the group
        complete=complete,
        partitions=ordered,
        max_lag=max_lag,
        total_lag=sum(p.current_lag for p in ordered),
    )


def group_expired(windows: Iterable[PartitionWindow], now_ms: int) -> bool:
    """No in-order commit on any partition within `expire_group_s` (or none ever): Burrow forgets the group."""
    return not any(
        w.last_commit_ms is not None and w.last_commit_ms >= now_ms - w.config.expire_group_s * 1000 for w in windows
    )


def evaluate(windows: Sequence[PartitionWindow], now_ms: int) -> GroupStatus:
    """A group's status from its partition windows, NOTFOUND once expired.

    No windows at all is a known group with no partitions left (its topics deleted): OK, complete 0.0, as Burrow.
    A group never seen is the caller's `GroupStatus.not_found()`.
    """
    if windows and group_expired(windows, now_ms):
        return GroupStatus.not_found()
    return evaluate_group(evaluate_partition(w, now_ms) for w in windows)
