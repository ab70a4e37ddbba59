"""Wire framings: Confluent (magic 0 + registry id) against the real Apicurio registry, and single-object."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

import schemas
from deploy.kafka.broker import free_port
from liqbot.config import Settings
from schemas.records import Trade
from streams.avro import SerdeError
from streams.registry import RegistryClient, RegistryError
from streams.roundtrip import records_from_captures
from streams.serde import ConfluentSerde, SingleObjectSerde


@pytest.fixture(scope="module")
def trade(bybit_capture: Path) -> Trade:
    return next(r for r in records_from_captures([bybit_capture]).records if isinstance(r, Trade))


def test_confluent_frame_carries_the_registry_id(settings: Settings, trade: Trade) -> None:
    client = RegistryClient(settings.serde.registry_url)
    serde = ConfluentSerde(client)
    topic = settings.kafka.topic_prefix + "market.trades"
    payload = serde.encode(topic, trade)
    assert payload[0] == 0
    (schema_id,) = struct.unpack(">I", payload[1:5])
    registered = RegistryClient(settings.serde.registry_url).schema(schema_id)
    assert json.loads(registered) == schemas.load("liqbot.Trade").raw
    assert f"{topic}-value" in client.subjects()
    assert ConfluentSerde(RegistryClient(settings.serde.registry_url)).decode(topic, payload) == trade


def test_confluent_same_schema_same_id_across_topics_and_clients(settings: Settings, trade: Trade) -> None:
    a = ConfluentSerde(RegistryClient(settings.serde.registry_url)).encode(settings.kafka.topic_prefix + "a", trade)
    b = ConfluentSerde(RegistryClient(settings.serde.registry_url)).encode(settings.kafka.topic_prefix + "b", trade)
    assert a[1:5] == b[1:5]


class CountingRegistry(RegistryClient):
    """The real registry client, counting the schema-by-id lookups a decode makes."""

    lookups = 0

    def schema(self, schema_id: int) -> str:
        self.lookups += 1
        return super().schema(schema_id)


def test_a_registered_schema_decodes_without_a_lookup(settings: Settings, trade: Trade) -> None:
    """A worker registers its topics' schemas at start-up: its first record must not wait on the registry."""
    topic = settings.kafka.topic_prefix + "market.trades.warm"
    payload = ConfluentSerde(RegistryClient(settings.serde.registry_url)).encode(topic, trade)
    registry = CountingRegistry(settings.serde.registry_url)
    warm = ConfluentSerde(registry)
    warm.header(topic, "liqbot.Trade")
    assert warm.decode(topic, payload) == trade
    assert registry.lookups == 0
    cold = ConfluentSerde(registry)
    assert cold.decode(topic, payload) == trade
    assert registry.lookups == 1


def test_confluent_unknown_id_and_bad_magic_are_serde_errors(settings: Settings) -> None:
    serde = ConfluentSerde(RegistryClient(settings.serde.registry_url))
    with pytest.raises(SerdeError, match="schema id 999999 is unknown to the registry"):
        serde.decode("t", b"\x00" + struct.pack(">I", 999_999) + b"\x02")
    with pytest.raises(SerdeError, match="does not start with the Confluent magic byte 0 \\(first bytes 7b22746f70\\)"):
        serde.decode("t", b'{"topic": "publicTrade.BTCUSDT"}')


def test_unreachable_registry_is_not_a_record_error(trade: Trade) -> None:
    """A registry outage must stop the consumer, not dead-letter good records."""
    serde = ConfluentSerde(RegistryClient(f"http://127.0.0.1:{free_port()}/apis/ccompat/v7", timeout_s=0.5))
    with pytest.raises(RegistryError, match=r"unreachable .*`liqbot kafka up`"):
        serde.decode("t", b"\x00\x00\x00\x00\x01\x02")


def test_single_object_frame(trade: Trade) -> None:
    serde = SingleObjectSerde()
    payload = serde.encode("t", trade)
    assert payload[:2] == b"\xc3\x01" and payload[2:10] == schemas.load("liqbot.Trade").fingerprint
    assert serde.decode("t", payload) == trade
    with pytest.raises(SerdeError, match="unknown schema fingerprint 0000000000000000"):
        serde.decode("t", b"\xc3\x01" + bytes(8) + payload[10:])
    with pytest.raises(SerdeError, match="not Avro single-object encoded"):
        serde.decode("t", payload[1:])
