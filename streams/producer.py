"""The producer every component uses: acks=all, idempotent, compressed, counted."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from liqbot.config import KafkaSettings
from liqbot.errors import LiqbotError
from schemas.records import AvroRecord
from streams.metrics import PRODUCE_FAILURES, RECORDS_PRODUCED
from streams.serde import Serde

__all__ = ["RecordProducer", "producer_config"]

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]


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
        self._producer = Producer(producer_config(settings, **overrides))
        self._serde = serde
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

    def send_all(self, items: list[tuple[str, AvroRecord, str | bytes]]) -> None:
        """(topic, record, key) triples: all are encoded before any is sent, so a bad one sends nothing."""
        payloads = [(topic, self._serde.encode(topic, record), key) for topic, record, key in items]
        for topic, value, key in payloads:
            self.send_raw(topic, value, key)

    def send_encoded(self, topic: str, schema: str, body: bytes, key: str | bytes) -> None:
        """Enqueue an Avro body encoded elsewhere (the compiled ingest path), framed for `schema`."""
        self.send_raw(topic, self._serde.header(topic, schema) + body, key)

    def send_raw(self, topic: str, value: bytes, key: str | bytes | None, headers: Headers | None = None) -> None:
        """Enqueue bytes as they are (dead letters, benchmarks)."""
        try:
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
        except BufferError:  # the local queue is full: serve callbacks and retry, with backoff
            for attempt in self._retry:
                with attempt:
                    self._producer.produce(topic, value=value, key=key, headers=headers,
                                           on_delivery=self._on_delivery)
        self._producer.poll(0)

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
            RECORDS_PRODUCED.labels(topic).inc()
            return
        self.failed += 1
        PRODUCE_FAILURES.labels(topic).inc()
        log.error("delivery failed: topic=%s key=%r error=%s", topic, msg.key(), err.str())
