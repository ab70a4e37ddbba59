"""Agent state per source partition, snapshotted to a changelog topic together with the offsets it holds.

At-least-once without losing or double-counting state: an offset is acknowledged (so it may be committed) only
once a snapshot that includes it is in the changelog, and a snapshot is written only once every output of the
records it holds is on the broker. After a crash the changelog gives the last snapshot and the consumer resumes
at or before the offsets it holds; records the snapshot already contains are recognised by offset and skipped,
the rest are folded in again and give the same outputs with the same ids.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agents.changelog import StateChangelog
from agents.pauses import Pauses
from streams.merge import EventTimeMerge

__all__ = ["SNAPSHOT_EVERY_S", "PartitionStates", "Slot"]

# Pickling a partition's state blocks the agents (8 ms on average, 32 ms at most, over a 300 s `bench e2e`;
# status.json, "snapshots"), so not often; a restart reads at most this much again (Kafka Streams commits
# every 30 s by default)
SNAPSHOT_EVERY_S = 30.0

log = logging.getLogger(__name__)

S = TypeVar("S")


@dataclass
class Slot(Generic[S]):
    """One source partition's state, the last offset of each topic folded into it, and the part of that saved."""

    partition: int
    state: S
    applied: dict[str, int] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)  # the offsets of the newest snapshot in the changelog
    merge: EventTimeMerge[Any] = field(default_factory=EventTimeMerge)
    snapshot_at: float = field(default_factory=time.monotonic)
    last_event_at: float = field(default_factory=time.monotonic)

    def fresh(self, topic: str, offset: int) -> bool:
        """False for a record this state already contains (a redelivery after a restart)."""
        return offset > self.applied.get(topic, -1)

    @property
    def unsaved(self) -> bool:
        return self.applied != self.acked


class PartitionStates(Generic[S]):
    """Slots of the partitions this worker owns; `snapshot_due` saves those whose interval has passed."""

    def __init__(self, changelog: StateChangelog, factory: Callable[[], S], *, version: str, every_s: float,
                 sources: Sequence[str] = (), pauses: Pauses | None = None) -> None:
        self._changelog = changelog
        self._sources = sources  # the input topics a slot's event-time merge waits on, in tie-break order
        self._factory = factory
        self._version = version  # state written by other code (another feature spec, say) is not loaded
        self._every_s = every_s
        self.slots: dict[int, Slot[S]] = {}
        self.pauses = pauses or Pauses()  # snapshots pickle on the reader's thread: it waits for them (status.json)
        self.last_bytes = 0  # size of the newest snapshot

    def slot(self, partition: int) -> Slot[S]:
        slot = self.slots.get(partition)
        if slot is None:
            slot, resume_points = self._load(partition)
            self.slots[partition] = slot
            for source in self._sources:  # first, in tie-break order
                slot.merge.add_source(source)
            slot.merge.resume(resume_points)
        slot.last_event_at = time.monotonic()
        return slot

    @staticmethod
    def done(slot: Slot[S], topic: str, offset: int) -> None:
        """The record at `offset` is folded into `slot` (or needs nothing): the next snapshot acknowledges it."""
        if offset > slot.applied.get(topic, -1):
            slot.applied[topic] = offset

    def most_overdue(self) -> tuple[float, Slot[S]] | None:
        """The slot with unsaved records whose interval passed longest ago, and by how long; None when none."""
        now = time.monotonic()
        due = [(now - slot.snapshot_at - self._every_s, slot) for slot in self.slots.values() if slot.unsaved]
        overdue = max(due, key=lambda pair: pair[0], default=None)
        return overdue if overdue is not None and overdue[0] >= 0 else None

    def snapshot(self, slot: Slot[S]) -> None:
        """Send the state with the offsets it holds; they count as acknowledged once it is on the broker.

        The caller has flushed the outputs first: a snapshot must never claim a record whose outputs could still
        be lost.
        """
        started = time.perf_counter()
        applied = dict(slot.applied)
        blob = pickle.dumps((self._version, slot.state, applied, slot.merge.resume_points()),
                            protocol=pickle.HIGHEST_PROTOCOL)

        def saved() -> None:  # a partition's snapshots land in the order they were sent
            slot.acked = applied

        self._changelog.write(slot.partition, _key(slot.partition), blob, saved)
        slot.snapshot_at = time.monotonic()
        self.pauses.add(time.perf_counter() - started)
        self.last_bytes = len(blob)

    def poll(self) -> None:
        """Acknowledge the snapshots delivered since the last call."""
        self._changelog.poll()

    def save(self, partitions: Iterable[int]) -> None:
        """Snapshot these partitions now if they hold unsaved records and wait for them (a clean hand-over)."""
        for partition in partitions:
            slot = self.slots.get(partition)
            if slot is not None and slot.unsaved:
                self.snapshot(slot)
        self._changelog.flush()

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions another worker now owns; their unsaved records are that worker's again."""
        for partition in partitions:
            self.slots.pop(partition, None)

    def _load(self, partition: int) -> tuple[Slot[S], dict[Hashable, int]]:
        """The slot from its newest snapshot, and where its event-time merge resumes (empty when starting anew)."""
        blob = self._changelog.read(partition, _key(partition))
        if blob is None:
            return Slot(partition, self._factory()), {}
        try:
            version, state, applied, *rest = pickle.loads(blob)  # before the merge's points, three fields
        except (AttributeError, ImportError, TypeError, ValueError, pickle.UnpicklingError) as exc:
            version = f"unreadable ({exc})"  # state of classes this code no longer has
        if version != self._version:
            log.warning("partition %d: snapshot of state version %s ignored (this code is %s); starting empty",
                        partition, version, self._version)
            return Slot(partition, self._factory()), {}
        log.info("partition %d: state restored at offsets %s", partition, applied)
        return Slot(partition, state, dict(applied), dict(applied)), (rest[0] if rest else {})


def _key(partition: int) -> bytes:
    return f"partition-{partition}".encode()
