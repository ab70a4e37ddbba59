"""Agent state per source partition, snapshotted to a changelogged table together with the offsets it holds.

At-least-once without losing or double-counting state: an event is acknowledged (so its offset may be
committed) only once a snapshot that includes it is in the changelog. After a crash the table gives the last
snapshot and the consumer resumes at or before the offsets it holds; events the snapshot already contains are
recognised by offset and skipped, the rest are folded in again and give the same outputs with the same ids.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agents.changelog import StateChangelog
from agents.codec import AgentCodec
from streams.merge import EventTimeMerge

__all__ = ["PartitionStates", "Slot"]

log = logging.getLogger(__name__)

S = TypeVar("S")


@dataclass
class Slot(Generic[S]):
    """One source partition's state and the last offset of each topic folded into it."""

    partition: int
    state: S
    applied: dict[str, int] = field(default_factory=dict)
    held: list[Any] = field(default_factory=list)  # Faust events not acknowledged yet
    merge: EventTimeMerge[Any] = field(default_factory=EventTimeMerge)
    snapshot_at: float = field(default_factory=time.monotonic)
    last_event_at: float = field(default_factory=time.monotonic)

    def fresh(self, topic: str, offset: int) -> bool:
        """False for an event this state already contains (a redelivery after a restart)."""
        return offset > self.applied.get(topic, -1)


class PartitionStates(Generic[S]):
    """Slots of the partitions this worker owns; `done` snapshots a slot when it is due."""

    def __init__(self, changelog: StateChangelog, factory: Callable[[], S], codec: AgentCodec, *, version: str,
                 every_s: float, sources: Sequence[str] = ()) -> None:
        self._changelog = changelog
        self._sources = sources  # the input topics a slot's event-time merge waits on, in tie-break order
        self._factory = factory
        self._codec = codec
        self._version = version  # state written by other code (another feature spec, say) is not loaded
        self._every_s = every_s
        self.slots: dict[int, Slot[S]] = {}
        self.snapshots = 0

    def slot(self, partition: int) -> Slot[S]:
        slot = self.slots.get(partition)
        if slot is None:
            slot = self.slots[partition] = self._load(partition)
            for source in self._sources:
                slot.merge.add_source(source)
        slot.last_event_at = time.monotonic()
        return slot

    def done(self, slot: Slot[S], event: Any, topic: str, offset: int) -> None:
        """`event` is folded into `slot` (or needs nothing): it is acknowledged with the next snapshot."""
        if offset > slot.applied.get(topic, -1):
            slot.applied[topic] = offset
        slot.held.append(event)

    def due(self, slot: Slot[S]) -> bool:
        return bool(slot.held) and time.monotonic() - slot.snapshot_at >= self._every_s

    async def snapshot_due(self) -> None:
        """The agent's timer: every slot with unacknowledged events whose interval has passed."""
        for slot in list(self.slots.values()):
            if self.due(slot):
                await self.snapshot(slot)

    async def snapshot(self, slot: Slot[S]) -> None:
        """Outputs first, then the state that claims them, then the acks."""
        held, slot.held = slot.held, []
        self._codec.flush()
        blob = pickle.dumps((self._version, slot.state, slot.applied), protocol=pickle.HIGHEST_PROTOCOL)
        self._changelog.write(slot.partition, _key(slot.partition), blob)
        for event in held:
            event.ack()
        slot.snapshot_at = time.monotonic()
        self.snapshots += 1

    def revoke(self, partitions: set[int]) -> None:
        """Forget partitions another worker now owns; their unacknowledged events are that worker's again."""
        for partition in partitions:
            self.slots.pop(partition, None)

    def _load(self, partition: int) -> Slot[S]:
        blob = self._changelog.read(partition, _key(partition))
        if blob is None:
            return Slot(partition, self._factory())
        version, state, applied = pickle.loads(blob)
        if version != self._version:
            log.warning("partition %d: snapshot of state version %s ignored (this code is %s); starting empty",
                        partition, version, self._version)
            return Slot(partition, self._factory())
        log.info("partition %d: state restored at offsets %s", partition, applied)
        return Slot(partition, state, dict(applied))


def _key(partition: int) -> bytes:
    return f"partition-{partition}".encode()
