"""Producer and consumer on the real broker: keyed by symbol, in order, and bad payloads dead-lettered raw."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from liqbot.config import Settings
from schemas.records import DeadLetter, Trade
from streams.avro import SerdeError
from streams.clients import Clients
from streams.consumer import ConsumedRecord
from streams.producer import RecordProducer, producer_config
from streams.roundtrip import records_from_captures
from streams.serde import make_serde


@pytest.fixture(scope="module")
def trades(bybit_capture: Path) -> list[Trade]:
    return [r for r in records_from_captures([bybit_capture]).records if isinstance(r, Trade)]


def _consume(clients: Clients, topic: str, expected: int) -> list[ConsumedRecord]:
    consumer = clients.consumer([topic], f"g-{uuid.uuid4().hex[:8]}")
    got: list[ConsumedRecord] = []
    for record in consumer.records(idle_timeout_s=10):
        got.append(record)
        if len(got) == expected:
            break
    consumer.close()
    return got


def test_producer_defaults_are_safe(settings: Settings) -> None:
    config = producer_config(settings.kafka)
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["compression.type"] in ("lz4", "zstd")


def test_real_trades_come_back_keyed_by_symbol_in_order(clients: Clients, trades: list[Trade]) -> None:
    topic = clients.topics.name("market.trades")
    for trade in trades:
        clients.producer.send(topic, trade, key=trade.symbol)
    assert clients.producer.flush(30) == 0 and clients.producer.delivered == len(trades) == 347
    got = _consume(clients, topic, len(trades))
    assert len(got) == len(trades)
    partition_of: dict[bytes, int] = {}
    for record in got:
        assert record.key == record.record.symbol.encode()  # type: ignore[attr-defined]
        assert record.key is not None
        assert partition_of.setdefault(record.key, record.partition) == record.partition
    for symbol in {t.symbol for t in trades}:
        assert [r.record for r in got if r.key == symbol.encode()] == [t for t in trades if t.symbol == symbol]


def test_bad_payloads_go_raw_to_dead_letters_and_good_ones_flow(clients: Clients, trades: list[Trade]) -> None:
    topic = clients.topics.name("market.trades")
    good = [t for t in trades if t.symbol == "BTCUSDT"][:4]
    serde = make_serde(clients.settings.serde)
    valid = serde.encode(topic, good[0])
    garbage = b'{"topic":"publicTrade.BTCUSDT"}'
    truncated = valid[:12]
    clients.producer.send(topic, good[0], key="BTCUSDT")
    clients.producer.send_raw(topic, garbage, key=b"BTCUSDT")
    clients.producer.send(topic, good[1], key="BTCUSDT")
    clients.producer.send_raw(topic, truncated, key=b"BTCUSDT")
    for trade in good[2:]:
        clients.producer.send(topic, trade, key="BTCUSDT")
    assert clients.producer.flush(30) == 0

    consumer = clients.consumer([topic], f"g-{uuid.uuid4().hex[:8]}")
    got = [r.record for r in consumer.records(idle_timeout_s=5)]
    consumer.close()
    assert got == good and consumer.dead_lettered == 2
    assert REGISTRY.get_sample_value("liqbot_dead_letters_total", {"source": topic, "stage": "decode"}) == 2
    assert REGISTRY.get_sample_value("liqbot_records_consumed_total", {"topic": topic}) == 4
    assert clients.producer.flush(30) == 0

    letters = [r.record for r in _consume(clients, clients.topics.name("deadletter"), 2)]
    by_raw = {letter.raw: letter for letter in letters if isinstance(letter, DeadLetter)}
    assert set(by_raw) == {garbage, truncated}
    assert by_raw[garbage].error.startswith(f"topic {topic}: payload does not start with the Confluent magic byte")
    assert by_raw[truncated].error.startswith("cannot decode liqbot.Trade: field ")
    assert by_raw[truncated].stage == "decode" and by_raw[truncated].source == topic
    assert by_raw[truncated].key == b"BTCUSDT" and by_raw[truncated].offset == 3


def test_encode_error_sends_nothing(clients: Clients, trades: list[Trade]) -> None:
    bad = replace(trades[0], size=0.004)  # type: ignore[arg-type]
    with pytest.raises(SerdeError, match="field size"):
        clients.producer.send(clients.topics.name("market.trades"), bad, key=bad.symbol)
    assert clients.producer.flush(10) == 0 and clients.producer.delivered == 0


def test_delivery_failure_is_counted(settings: Settings, trades: list[Trade]) -> None:
    producer = RecordProducer(settings.kafka, make_serde(settings.serde), **{"message.timeout.ms": 1500})
    producer.send(f"{settings.kafka.topic_prefix}no-such-topic", trades[0], key="BTCUSDT")
    producer.flush(10)
    assert (producer.delivered, producer.failed) == (0, 1)
