"""Agent state snapshots in a compacted changelog topic, one key per source partition.

Faust's own table recovery hung on restart in our tests (the changelog record was there; recovery never read
it, the faust-streaming#74 pattern), so snapshots are written and read here with librdkafka: the changelog
partition is the source partition, the newest record of a key is the state, compaction keeps only that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from liqbot.config import KafkaSettings
from liqbot.errors import LiqbotError
from streams.consumer import high_watermark

__all__ = ["StateChangelog"]

log = logging.getLogger(__name__)

_MAX_BYTES = 64 * 2**20  # a symbol's order book and windows pickle to a few MB


class StateChangelog:
    """Write and read the newest snapshot of each source partition."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self._settings = settings
        self._producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all",
                                   "enable.idempotence": True, "compression.type": "lz4",
                                   "message.max.bytes": _MAX_BYTES, "linger.ms": 0})

    def ensure(self) -> None:
        """Create the compacted topic (idempotent)."""
        admin = AdminClient({"bootstrap.servers": self._settings.bootstrap_servers})
        spec = NewTopic(self.topic, num_partitions=self._settings.partitions,
                        replication_factor=self._settings.replication_factor,
                        config={"cleanup.policy": "compact", "max.message.bytes": str(_MAX_BYTES)})
        try:
            admin.create_topics([spec])[self.topic].result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise LiqbotError(f"cannot create state changelog {self.topic}: {exc.args[0].str()}") from exc

    def write(self, partition: int, key: bytes, blob: bytes, saved: Callable[[], None]) -> None:
        """Send a snapshot; `saved` runs (from `poll` or `flush`) once it is on the broker, never if it fails."""
        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is None:
                saved()
            else:
                log.error("state snapshot of partition %d not written to %s: %s", partition, self.topic, error.str())

        self._producer.produce(self.topic, key=key, value=blob, partition=partition, on_delivery=delivered)

    def poll(self) -> None:
        """Run the callbacks of the snapshots delivered since the last call; does not wait."""
        self._producer.poll(0)

    def flush(self) -> None:
        """Wait until every snapshot sent is on the broker (a hand-over)."""
        if self._producer.flush(30):
            raise LiqbotError(f"state snapshots not delivered to {self.topic} in 30 s")

    def read(self, partition: int, key: bytes) -> bytes | None:
        """The newest snapshot of `key` in `partition`, or None when there is none."""
        consumer = Consumer({"bootstrap.servers": self._settings.bootstrap_servers, "group.id": "state-reader",
                             "enable.auto.commit": False, "max.partition.fetch.bytes": _MAX_BYTES,
                             "fetch.max.bytes": _MAX_BYTES})
        try:
            high = high_watermark(consumer, TopicPartition(self.topic, partition))
            if high <= 0:
                return None
            consumer.assign([TopicPartition(self.topic, partition, OFFSET_BEGINNING)])
            newest: bytes | None = None
            offset = -1
            while offset < high - 1:
                msg = consumer.poll(10)
                if msg is None:
                    raise LiqbotError(f"state changelog {self.topic}[{partition}] stopped before offset {high - 1}")
                if msg.error():
                    raise KafkaException(msg.error())
                offset = msg.offset() or 0
                if msg.key() == key:
                    newest = msg.value()
            return newest
        finally:
            consumer.close()
