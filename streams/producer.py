"""The producer every component uses: acks=all, idempotent, compressed, counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from liqbot.config import KafkaSettings
from liqbot.errors import LiqbotError
from schemas.records import AvroRecord
from streams.metrics import PRODUCE_FAILURES, RECORDS_PRODUCED, HotCounterChild
from streams.serde import Serde

__all__ = ["RecordProducer", "producer_config"]

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

# Delivery callbacks are served at most this often while sending: a poll per message cost as much as the
# produce itself, and at a low rate every send still polls.
_POLL_INTERVAL_NS = 1_000_000


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings shared by every producer of the project."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": settings.compression_type,
        "linger.ms": settings.linger_ms,
        "socket.nagle.disable": True,
    }
    config.update(overrides)
    return config


class RecordProducer:
    """Encodes typed records with the serde and produces them keyed by symbol (or any key)."""

    def __init__(self, settings: KafkaSettings, serde: Serde, **overrides: Any) -> None:
        # One delivery callback for the producer, not one per message: produce() then takes positional arguments
        # only, which saves a third of its cost (keyword parsing and a callback object per message).
        self._producer = Producer({**producer_config(settings, **overrides), "on_delivery": self._on_delivery})
        self._serde = serde
        self._acked: dict[str, HotCounterChild] = {}  # RECORDS_PRODUCED by topic, looked up once per topic
        self._polled_ns = 0
        self.delivered = 0
        self.failed = 0
        # librdkafka retries broker errors itself; a full local queue is the one case left to us.
        self._retry = Retrying(
            retry=retry_if_exception_type(BufferError),
            stop=stop_after_delay(60),
            wait=wait_exponential(multiplier=0.005, max=0.5),
            before_sleep=self._serve_callbacks,
            reraise=True,
        )

    def send(self, topic: str, record: AvroRecord, key: str | bytes, headers: Headers | None = None) -> None:
        """Encode and enqueue; encoding errors raise `SerdeError` before anything is sent."""
        self.send_raw(topic, self._serde.encode(topic, record), key, headers)

    def send_all(self, items: Sequence[tuple[str, AvroRecord, str | bytes]]) -> None:
        """(topic, record, key) triples: all are encoded before any is sent, so a bad one sends nothing."""
        payloads = [(topic, self._serde.encode(topic, record), key) for topic, record, key in items]
        for topic, value, key in payloads:
            self.send_raw(topic, value, key)

    def header(self, topic: str, schema: str) -> bytes:
        """The serde's bytes before an Avro body of `schema` on `topic` (bodies the compiled ingest path encoded)."""
        return self._serde.header(topic, schema)

    def send_raw(self, topic: str, value: bytes | None, key: str | bytes | None,
                 headers: Headers | None = None) -> None:
        """Enqueue bytes as they are (dead letters, bodies the compiled ingest path encoded, benchmarks; None is a
        tombstone)."""
        try:
            if headers is None:
                self._producer.produce(topic, value, key)
            else:
                self._producer.produce(topic, value, key, headers=headers)
        except BufferError:
            self._retry_produce(topic, value, key, headers)
        now_ns = time.monotonic_ns()
        if now_ns - self._polled_ns >= _POLL_INTERVAL_NS:
            self._polled_ns = now_ns
            self._producer.poll(0)

    def _retry_produce(self, topic: str, value: bytes | None, key: str | bytes | None, headers: Headers | None) -> None:
        """The local queue is full: serve callbacks and retry, with backoff."""
        for attempt in self._retry:
            with attempt:
                self._producer.produce(topic, value, key, headers=headers)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every enqueued record; returns how many are still undelivered."""
        return int(self._producer.flush(timeout_s))

    def drain(self, timeout_s: float = 60.0) -> None:
        """Flush, and fail loudly when records are still undelivered after `timeout_s`."""
        if self.flush(timeout_s):
            raise LiqbotError(f"records still undelivered after {timeout_s:.0f} s; is the broker up? "
                              "(`liqbot kafka status`)")

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)

    def _serve_callbacks(self, _: object) -> None:
        self._producer.poll(0.05)  # frees queue space while waiting to retry

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or "?"
        if err is None:
            self.delivered += 1
            acked = self._acked.get(topic)
            if acked is None:
                acked = self._acked[topic] = RECORDS_PRODUCED.labels(topic)
            acked.value += 1
            return
        self.failed += 1
        PRODUCE_FAILURES.labels(topic).inc()
        log.error("delivery failed: topic=%s key=%r error=%s", topic, msg.key(), err.str())
