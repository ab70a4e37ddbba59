"""Keeps bad input: the raw bytes and the reason go to the dead-letter topic, counted and logged."""

from __future__ import annotations

import logging
import time

from liqbot.errors import LiqbotError
from schemas.records import DeadLetter
from streams.metrics import DEAD_LETTERS
from streams.producer import RecordProducer
from streams.topics import TopicRegistry

__all__ = ["DeadLetterSink"]

log = logging.getLogger(__name__)


class DeadLetterSink:
    """Sends `DeadLetter` records to the registry's dead-letter topic."""

    def __init__(self, producer: RecordProducer, topics: TopicRegistry) -> None:
        self._producer = producer
        self._topic = topics.name("deadletter")
        self.count = 0

    def send(self, *, source: str, stage: str, error: BaseException, raw: bytes, key: bytes | None = None,
             partition: int | None = None, offset: int | None = None, ts_recv_ns: int | None = None,
             error_type: str | None = None) -> DeadLetter:
        """`error_type` names the failure when it is not the exception's class (the sink's column checks)."""
        letter = DeadLetter(
            source=source, stage=stage, error=str(error), error_type=error_type or type(error).__name__, raw=raw,
            key=key,
            partition=partition, offset=offset, ts_recv_ns=ts_recv_ns, ts_dead_ns=time.time_ns(),
        )
        self._producer.send(self._topic, letter, key=source)
        self.count += 1
        DEAD_LETTERS.labels(source, stage).inc()
        log.warning("dead letter: source=%s stage=%s partition=%s offset=%s error=%s (%d raw bytes)",
                    source, stage, partition, offset, letter.error, len(raw))
        return letter

    def flush(self, timeout_s: float = 30.0) -> None:
        """Waits until Kafka holds every dead letter sent; raises when it does not in time."""
        left = self._producer.flush(timeout_s)
        if left:
            raise LiqbotError(f"{left} dead letters not acknowledged by Kafka within {timeout_s:.0f}s")
