"""The lag monitor: one round reads the cluster, feeds the tracker in Burrow's order and returns a snapshot."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from streams.lag.cluster import ClusterReader, LogOffsets
from streams.lag.event_time import EventTimeReader
from streams.lag.tracker import LagSnapshot, LagTracker

__all__ = ["LagMonitor", "RoundStats", "wall_clock_ms"]


def wall_clock_ms() -> int:
    """Wall time: commit times in `__consumer_offsets` are the coordinator's wall time."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class RoundStats:
    rounds: int = 0
    malformed: int = 0  # __consumer_offsets records that could not be parsed (logged and skipped)
    last_round_s: float = 0.0


class LagMonitor:
    """Samples the cluster round by round; the tracker keeps Burrow's windows and the lookup tables between rounds."""

    def __init__(self, reader: ClusterReader, tracker: LagTracker, events: EventTimeReader | None = None,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.reader, self.tracker, self.events = reader, tracker, events
        self.clock = clock
        self.stats = RoundStats()

    def round(self) -> LagSnapshot:
        """Commits since the last round (against the high watermarks sampled before them), then watermarks now."""
        started = time.monotonic()
        batch = self.reader.read_commits()
        unsampled = self.tracker.unsampled(batch.entries)
        if unsampled:  # a partition's first commits need a high watermark before them, or Burrow drops them
            self.tracker.observe(self.reader.log_offsets(unsampled), self.clock(), lookup=False)
        self.tracker.apply(batch.entries, self.clock())
        now_ms = self.clock()
        self.tracker.observe(self.reader.log_offsets(self.tracker.partitions()), now_ms)
        snapshot = self.tracker.snapshot(now_ms, self._event_lag)
        self.stats.rounds += 1
        self.stats.malformed += batch.malformed
        self.stats.last_round_s = time.monotonic() - started
        return snapshot

    def run(self, every_s: float, stop: threading.Event, on_snapshot: Callable[[LagSnapshot], None],
            on_error: Callable[[Exception], None]) -> None:
        """Rounds every `every_s` until `stop` is set; a failed round is reported and the next one tried."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                on_snapshot(self.round())
            except Exception as exc:  # the broker went away: keep sampling, it may come back
                on_error(exc)
            stop.wait(max(every_s - (time.monotonic() - started), 0.0))

    def close(self) -> None:
        self.reader.close()
        if self.events is not None:
            self.events.close()

    def _event_lag(self, topic: str, partition: int, committed: int, log_offsets: LogOffsets) -> float | None:
        events = self.events
        if events is None or topic not in events.topics:
            return None
        if committed >= log_offsets.latest:
            return 0.0
        newest = events.before(topic, partition, log_offsets.latest, log_offsets.earliest)
        consumed = events.before(topic, partition, committed, log_offsets.earliest)
        if newest is None or consumed is None:
            return math.nan  # nothing consumed is left in the log, or the records were not ours
        # Symbols share partitions and their event times interleave by milliseconds: below zero means caught up
        return max(newest - consumed, 0) / 1e9
