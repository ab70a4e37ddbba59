"""Real producers and consumers for the lag tests: a steady producer; consumers that keep up, slow, stop, rewind."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Literal

from confluent_kafka import Consumer, TopicPartition

from schemas.records import AvroRecord
from streams.producer import RecordProducer

__all__ = ["PacedConsumer", "SteadyProducer"]

Mode = Literal["fast", "slow", "paused"]


class SteadyProducer(threading.Thread):
    """Sends `records` in order at `rate_per_s` until stopped (or the records run out)."""

    def __init__(self, producer: RecordProducer, topic: str, records: Sequence[AvroRecord], rate_per_s: float) -> None:
        super().__init__(daemon=True)
        self.producer, self.topic, self.records, self.interval_s = producer, topic, records, 1 / rate_per_s
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set() and self.sent < len(self.records):
            record = self.records[self.sent]
            self.producer.send(self.topic, record, key=record.kafka_key())
            self.sent += 1
            self.producer.poll(0)
            self.stop.wait(max(started + self.sent * self.interval_s - time.monotonic(), 0.0))
        self.producer.flush(10)


class PacedConsumer(threading.Thread):
    """A real group member committing its position every `commit_every_s`; `mode` and `rewind` steer it."""

    def __init__(self, bootstrap: str, topic: str, group: str, *, commit_every_s: float = 0.5,
                 slow_rate_per_s: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.group = group
        self.mode: Mode = "fast"
        self.commits = 0
        self._slow_interval_s = 1 / slow_rate_per_s
        self._commit_every_s = commit_every_s
        self._rewind_to: int | None = None
        self._halt = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                                   "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50})
        self._consumer.subscribe([topic])

    def rewind(self, offset: int) -> None:
        """Seek every assigned partition back to `offset` and commit it, then go on at the slow pace."""
        self._rewind_to = offset

    def close(self) -> None:
        self._halt.set()
        self.join(10)
        self._consumer.close()

    def run(self) -> None:
        committed_at = time.monotonic()
        while not self._halt.is_set():
            if self.mode == "paused":  # a hung consumer: no poll, no commit (still a member: heartbeats go on)
                self._halt.wait(0.05)
                continue
            if self._rewind_to is not None:
                self._seek_back(self._rewind_to)
            msg = self._consumer.poll(0.05)
            if msg is not None and self.mode == "slow":
                self._halt.wait(self._slow_interval_s)
            if time.monotonic() - committed_at >= self._commit_every_s:
                self._commit()
                committed_at = time.monotonic()

    def _seek_back(self, offset: int) -> None:
        assignment = self._consumer.assignment()
        if not assignment:
            return
        back = [TopicPartition(tp.topic, tp.partition, offset) for tp in assignment]
        for tp in back:
            self._consumer.seek(tp)
        self._consumer.commit(offsets=back, asynchronous=False)
        self.commits += 1
        self._rewind_to, self.mode = None, "slow"

    def _commit(self) -> None:
        positions = [tp for tp in self._consumer.position(self._consumer.assignment()) if tp.offset >= 0]
        if positions:
            self._consumer.commit(offsets=positions, asynchronous=False)
            self.commits += 1
