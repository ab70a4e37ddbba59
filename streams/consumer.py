"""The consumer every component uses: decodes typed records; bad payloads go to the dead-letter topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from tenacity import retry, retry_if_exception, stop_after_delay, wait_fixed

from liqbot.config import KafkaSettings
from schemas.records import AvroRecord
from streams.avro import SerdeError
from streams.deadletter import DeadLetterSink
from streams.metrics import RECORDS_CONSUMED, SERDE_ERRORS
from streams.serde import Serde

__all__ = ["ConsumedRecord", "RecordConsumer", "consumer_config", "high_watermark"]

log = logging.getLogger(__name__)


_NO_LEADER_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaException) and exc.args[0].code() in _NO_LEADER_YET


@retry(retry=retry_if_exception(_retriable), stop=stop_after_delay(30), wait=wait_fixed(0.2), reraise=True)
def high_watermark(consumer: Consumer, partition: TopicPartition) -> int:
    """A partition's end offset; a topic created a moment ago may not have a leader yet, hence the retry."""
    return int(consumer.get_watermark_offsets(partition, timeout=10)[1])


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """A decoded record with where it came from (topic, partition, offset make it unique)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int
    record: AvroRecord
    headers: tuple[tuple[str, str | bytes | None], ...] = ()


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """At-least-once: offsets are stored only after a record was handed over or dead-lettered."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "socket.nagle.disable": True,
    }
    config.update(overrides)
    return config


class RecordConsumer:
    """Yields `ConsumedRecord`s; a payload that fails to decode is dead-lettered raw and skipped."""

    def __init__(self, settings: KafkaSettings, serde: Serde, topics: list[str], group_id: str,
                 dead_letters: DeadLetterSink, *, from_now: bool = False, **overrides: Any) -> None:
        """Joins `group_id` on `topics`; with `from_now`, reads only what is produced after this call instead."""
        self._consumer = Consumer(consumer_config(settings, group_id, **overrides))
        if from_now:
            self._consumer.assign(self._high_watermarks(topics))
        else:
            self._consumer.subscribe(topics)
        self._serde = serde
        self._dead_letters = dead_letters
        self.dead_lettered = 0

    def poll(self, timeout_s: float) -> ConsumedRecord | None:
        """The next good record, or None when nothing (good) arrived within the timeout."""
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return None
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return None
            raise KafkaException(err)
        record = self._decode(msg)
        self._consumer.store_offsets(message=msg)
        return record

    def records(self, idle_timeout_s: float, poll_timeout_s: float = 0.2) -> Iterator[ConsumedRecord]:
        """Good records until none arrived for `idle_timeout_s`."""
        last = time.monotonic()
        while time.monotonic() - last < idle_timeout_s:
            got = self.poll(poll_timeout_s)
            if got is not None:
                last = time.monotonic()
                yield got

    def _high_watermarks(self, topics: list[str]) -> list[TopicPartition]:
        """Current end offsets of every partition of `topics`."""
        return [TopicPartition(topic, partition, high_watermark(self._consumer, TopicPartition(topic, partition)))
                for topic in topics
                for partition in self._consumer.list_topics(topic, timeout=10).topics[topic].partitions]

    def close(self) -> None:
        self._consumer.close()

    def _decode(self, msg: Message) -> ConsumedRecord | None:
        topic, value = msg.topic() or "", msg.value() or b""
        try:
            record = self._serde.decode(topic, value)
        except SerdeError as exc:
            SERDE_ERRORS.labels(topic, "decode").inc()
            self._dead_letters.send(source=topic, stage="decode", error=exc, raw=value, key=msg.key(),
                                    partition=msg.partition(), offset=msg.offset())
            self.dead_lettered += 1
            return None
        RECORDS_CONSUMED.labels(topic).inc()
        return ConsumedRecord(
            topic=topic, partition=msg.partition() or 0, offset=msg.offset() or 0, key=msg.key(),
            timestamp_ms=msg.timestamp()[1], record=record, headers=_headers(msg),
        )


def _headers(msg: Message) -> tuple[tuple[str, str | bytes | None], ...]:
    headers = msg.headers() or ()
    return tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
