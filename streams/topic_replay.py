"""Topic replay: a time range of the market topics copied, byte for byte, into a run's own namespace.

The agents then run over the copy exactly as they run live (same code, same event-time merge, same partitions),
in consumer groups and changelogs of the run's namespace, so the live topics and the live groups are never
touched. The range is in Kafka timestamps (offsets for times); the kept-for-good state topics (instruments,
funding) are copied from their start, because a decision after `start` still needs the listing made before it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from liqbot.config import KafkaSettings
from liqbot.errors import LiqbotError
from streams.consumer import high_watermark
from streams.topics import TopicRegistry, TopicSpec

__all__ = ["CopyRange", "copy_ranges", "occupied", "plan"]


@dataclass(frozen=True, slots=True)
class CopyRange:
    """Offsets [start, end) of one source partition; `topic` is the logical name; `state`: copied from its start."""

    topic: str
    partition: int
    start: int
    end: int
    state: bool = False

    @property
    def records(self) -> int:
        return self.end - self.start


def replayed(spec: TopicSpec) -> bool:
    """The agents' market inputs: what a replay re-reads (their own outputs it makes anew)."""
    return spec.name.startswith("market.")


def _from_start(spec: TopicSpec) -> bool:
    return spec.retention_ms == -1 or spec.cleanup_policy == "compact"


def plan(source: KafkaSettings, start_ms: int, end_ms: int) -> list[CopyRange]:
    """Per market partition, the offsets whose Kafka timestamps lie in [start_ms, end_ms)."""
    if end_ms <= start_ms:
        raise LiqbotError(f"--to ({end_ms} ms) must be after --from ({start_ms} ms)")
    registry = TopicRegistry(source)
    consumer = Consumer({"bootstrap.servers": source.bootstrap_servers, "group.id": "liqbot-replay-plan",
                         "enable.auto.commit": False})
    try:
        ranges = []
        for spec in filter(replayed, registry.specs):
            name = registry.name(spec)
            metadata = consumer.list_topics(name, timeout=10).topics[name]
            if metadata.error is not None:
                raise LiqbotError(f"cannot read topic {name}: {metadata.error.str()}; is this the live namespace "
                                  f"(LIQBOT_TOPIC_PREFIX={source.topic_prefix!r})?")
            for partition in sorted(metadata.partitions):
                state = _from_start(spec)
                start = 0 if state else _offset_at(consumer, name, partition, start_ms)
                end = _offset_at(consumer, name, partition, end_ms)
                ranges.append(CopyRange(spec.name, partition, start, end, state))
        return ranges
    finally:
        consumer.close()


def _offset_at(consumer: Consumer, topic: str, partition: int, at_ms: int) -> int:
    """The first offset with a timestamp at or after `at_ms`; the end of the partition when there is none."""
    end = high_watermark(consumer, TopicPartition(topic, partition))
    [found] = consumer.offsets_for_times([TopicPartition(topic, partition, at_ms)], timeout=10)
    return end if found.offset < 0 else min(found.offset, end)


def copy_ranges(source: KafkaSettings, target: KafkaSettings, ranges: Iterable[CopyRange],
                on_progress: Callable[[Counter[str]], None] | None = None) -> Counter[str]:
    """Copies each range to the same partition of the target's topic: key, value, headers and timestamp kept."""
    ranges = [r for r in ranges if r.records > 0]
    src, dst = TopicRegistry(source), TopicRegistry(target)
    consumer = Consumer({"bootstrap.servers": source.bootstrap_servers, "group.id": "liqbot-replay-copy",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    producer = Producer({"bootstrap.servers": target.bootstrap_servers, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 20, "compression.type": "lz4"})
    copied: Counter[str] = Counter()
    last = time.monotonic()
    try:
        consumer.assign([TopicPartition(src.name(r.topic), r.partition, r.start) for r in ranges])
        ends = {(src.name(r.topic), r.partition): (r.end, dst.name(r.topic), r.topic) for r in ranges}
        while ends:
            batch = consumer.consume(10_000, timeout=10)
            for msg in batch:
                if (error := msg.error()) is not None:
                    raise LiqbotError(f"replay copy: {error.str()}")
                where = (msg.topic() or "", msg.partition() or 0)
                if where in ends and (msg.offset() or 0) < ends[where][0]:
                    _, name, logical = ends[where]
                    producer.produce(name, value=msg.value(), key=msg.key(), partition=where[1],
                                     timestamp=msg.timestamp()[1], headers=msg.headers())
                    producer.poll(0)
                    copied[logical] += 1
            # by position, not by the last offset seen: compaction and transaction markers leave offset gaps
            done = [tp for tp in consumer.position([TopicPartition(*where) for where in ends])
                    if tp.offset >= ends[(tp.topic, tp.partition)][0]]
            if not batch and not done:
                _stalled(ends)
            for tp in done:
                del ends[(tp.topic, tp.partition)]
            if done:
                consumer.incremental_unassign(done)
            if on_progress is not None and time.monotonic() - last >= 5:
                on_progress(copied)
                last = time.monotonic()
        if producer.flush(60):
            raise LiqbotError("replay copy: records not delivered to the run's topics within 60 s")
        return copied
    finally:
        consumer.close()


def _stalled(ends: dict[tuple[str, int], tuple[int, str, str]]) -> None:
    waiting = ", ".join(f"{topic}[{partition}] to offset {end}" for (topic, partition), (end, _, _) in ends.items())
    raise LiqbotError(f"replay copy: no records for 10 s while waiting for {waiting}")


def occupied(consumer: Consumer, settings: KafkaSettings) -> int:
    """Records held by the namespace's topics: more than none means its run was made already."""
    registry = TopicRegistry(settings)
    total = 0
    for spec in registry.specs:
        name = registry.name(spec)
        for partition in consumer.list_topics(name, timeout=10).topics[name].partitions:
            total += high_watermark(consumer, TopicPartition(name, partition))
    return total
