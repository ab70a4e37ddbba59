"""The topic registry creates every topic once, with its partitions and retention, on the real broker."""

from __future__ import annotations

from dataclasses import replace

import pytest
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from liqbot.config import Settings
from schemas.records import RECORD_TYPES
from streams.clients import Clients
from streams.topics import TOPICS, TopicMismatchError, TopicRegistry


def test_every_record_kind_has_exactly_one_topic() -> None:
    schemas = [t.schema for t in TOPICS]
    assert len(schemas) == len(set(schemas)) == 16
    assert all(t.key == "symbol" for t in TOPICS if t.name not in {"deadletter", "control"})


def test_each_record_kind_is_keyed_by_the_field_its_topic_names() -> None:
    for spec in TOPICS:
        assert spec.key == RECORD_TYPES[spec.schema].KEY_FIELD, spec.name


def test_ensure_creates_then_is_idempotent(settings: Settings) -> None:
    clients = Clients.connect(settings)
    admin = clients.admin()
    first = clients.topics.ensure(admin)
    assert set(first.values()) == {"created"} and len(first) == 16
    assert set(clients.topics.ensure(admin).values()) == {"exists"}

    metadata = admin.list_topics(timeout=10)
    trades = clients.topics.name("market.trades")
    assert trades == settings.kafka.topic_prefix + "market.trades"
    assert len(metadata.topics[trades].partitions) == settings.kafka.partitions

    resources = [ConfigResource("topic", clients.topics.name(n)) for n in ("market.book", "market.instruments")]
    book, instruments = (f.result() for f in admin.describe_configs(resources).values())
    assert book["retention.ms"].value == str(2 * 86_400_000) and book["cleanup.policy"].value == "delete"
    assert instruments["cleanup.policy"].value == "compact" and instruments["retention.ms"].value == "-1"


def test_existing_topic_with_other_partition_count_is_refused(settings: Settings) -> None:
    Clients.connect(settings).topics.ensure(Clients.connect(settings).admin())
    wider = TopicRegistry(replace(settings.kafka, partitions=settings.kafka.partitions + 1))
    with pytest.raises(TopicMismatchError, match=r"has 3 partitions, the registry expects 4; symbol-keyed topics"):
        wider.ensure(Clients.connect(settings).admin())
