"""Kafka clients wired from one `Settings`: serde, topic registry, producer, dead letters, consumers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

from liqbot.config import Settings
from streams.consumer import RecordConsumer
from streams.deadletter import DeadLetterSink
from streams.producer import RecordProducer
from streams.serde import Serde, make_serde
from streams.topics import TopicRegistry

__all__ = ["Clients"]


@dataclass
class Clients:
    settings: Settings
    serde: Serde
    topics: TopicRegistry
    producer: RecordProducer
    dead_letters: DeadLetterSink

    @classmethod
    def connect(cls, settings: Settings, **producer_overrides: Any) -> Clients:
        serde = make_serde(settings.serde)
        topics = TopicRegistry(settings.kafka)
        producer = RecordProducer(settings.kafka, serde, **producer_overrides)
        return cls(settings, serde, topics, producer, DeadLetterSink(producer, topics))

    def register_schemas(self) -> None:
        """Every topic's schema id looked up now (registered if new), so that no record waits on the registry:
        a worker's first decision waited 10-25 ms on it (`liqbot bench e2e`)."""
        for spec in self.topics.specs:
            self.serde.header(self.topics.name(spec), spec.schema)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.settings.kafka.bootstrap_servers})

    def consumer(self, topics: list[str], group_id: str, *, from_now: bool = False, **overrides: Any) -> RecordConsumer:
        return RecordConsumer(self.settings.kafka, self.serde, topics, group_id, self.dead_letters,
                              from_now=from_now, **overrides)
