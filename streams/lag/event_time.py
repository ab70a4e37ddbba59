"""The exchange event time of the record just below an offset, read from Kafka and decoded with the project's Serde.

Only topics of the project's registry whose record type has `ts_event_ns` carry an event time (every topic but the
dead-letter one); any other topic has none. A record's offset never changes, so each answer is cached for good.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from schemas.records import RECORD_TYPES
from streams.avro import SerdeError
from streams.registry import RegistryError
from streams.serde import Serde
from streams.topics import TopicRegistry

__all__ = ["EVENT_TIME_FIELD", "EventTimeReader", "event_time_topics"]

log = logging.getLogger(__name__)

EVENT_TIME_FIELD = "ts_event_ns"
# Transaction markers take offsets but are no records: look a few offsets further back for the newest real one
_LOOK_BACK = 8
_CACHE_LIMIT = 100_000


def event_time_topics(topics: TopicRegistry) -> frozenset[str]:
    """The registry's topics (as named on the cluster) whose records carry the exchange event time."""
    return frozenset(
        topics.name(spec) for spec in topics.specs
        if EVENT_TIME_FIELD in getattr(RECORD_TYPES[spec.schema], "__dataclass_fields__", {})
    )


class EventTimeReader:
    """Reads single records by offset with a group-less consumer (it commits nothing, joins no group)."""

    def __init__(self, bootstrap: str, serde: Serde, topics: frozenset[str], timeout_s: float = 2.0,
                 **overrides: Any) -> None:
        self.topics = topics
        self._serde = serde
        self._timeout_s = timeout_s
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "liqbot-lag-event-time",  # required by librdkafka; never joined (assign only) nor committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_uncommitted",  # the newest record produced, even inside an open transaction
            "fetch.wait.max.ms": 50,
            **overrides,
        })
        self._cache: dict[tuple[str, int, int], int | None] = {}

    def before(self, topic: str, partition: int, end: int, earliest: int) -> int | None:
        """Event time (ns) of the newest record below offset `end`; None if none is left or the topic has none."""
        if topic not in self.topics or end <= earliest:
            return None
        key = (topic, partition, end)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            try:
                self._cache[key] = self._read(topic, partition, end, max(end - _LOOK_BACK, earliest))
            except RegistryError as exc:  # the registry is down: not the record's fault, so ask again next time
                log.warning("no event time for %s[%s] below %s: %s", topic, partition, end, exc)
                return None
        return self._cache[key]

    def _read(self, topic: str, partition: int, end: int, start: int) -> int | None:
        self._consumer.assign([TopicPartition(topic, partition, start)])
        newest: Message | None = None
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline:
            for msg in self._consumer.consume(num_messages=_LOOK_BACK, timeout=0.05):
                offset = msg.offset()
                if msg.error() is None and offset is not None and offset < end:
                    newest = msg
            if newest is not None and (newest.offset() or 0) >= end - 1:
                break
            if self._position(topic, partition) >= end:
                break  # the offsets left are transaction markers
        return None if newest is None else self._event_time(topic, newest)

    def _position(self, topic: str, partition: int) -> int:
        (tp,) = self._consumer.position([TopicPartition(topic, partition)])
        return int(tp.offset)

    def _event_time(self, topic: str, msg: Message) -> int | None:
        try:
            record = self._serde.decode(topic, msg.value() or b"")
        except SerdeError as exc:  # not a record of ours: it has no event time, now or later
            log.warning("no event time for %s[%s]@%s: %s", topic, msg.partition(), msg.offset(), exc)
            return None
        value = getattr(record, EVENT_TIME_FIELD, None)
        return value if isinstance(value, int) else None

    def close(self) -> None:
        self._consumer.close()
