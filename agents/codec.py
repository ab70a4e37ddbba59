"""Agents' records in and out: Avro through the project's serde; what fails to decode goes to the dead letters."""

from __future__ import annotations

import logging
from collections import Counter

from liqbot_core import MarketDecoder, MarketEvent

from schemas.records import AvroRecord, BookUpdate, Liquidation, Ticker, TopOfBook, Trade
from streams.avro import SerdeError
from streams.clients import Clients
from streams.metrics import RECORDS_CONSUMED, SERDE_ERRORS, HotCounterChild
from streams.serde import market_decoder

__all__ = ["AgentCodec"]

log = logging.getLogger(__name__)

_MARKET_SCHEMAS = frozenset(kind.SCHEMA for kind in (Liquidation, Trade, TopOfBook, BookUpdate, Ticker))


class AgentCodec:
    """Decodes consumed payloads and produces results with librdkafka (the partitioner ingest uses).

    Every symbol-keyed topic must put a symbol in the same partition number, or the agents' joins (intents
    with trades, say) would see different symbols; so outputs go through the same producer as ingest.
    """

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._names = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs
                       if spec.name != "deadletter"}
        self.counts: Counter[str] = Counter()  # dead_lettered, sent:<schema>
        self._consumed: dict[str, HotCounterChild] = {}  # RECORDS_CONSUMED by topic, looked up once per topic
        self._market: MarketDecoder | None = None  # made at first use: the serde's headers need the registry

    def decode(self, topic: str, payload: bytes | None, key: bytes | None, partition: int,
               offset: int) -> AvroRecord | None:
        """The record, or None after dead-lettering a payload that is not one."""
        try:
            record = self.clients.serde.decode(topic, payload or b"")
        except SerdeError as exc:
            self.counts["dead_lettered"] += 1
            SERDE_ERRORS.labels(topic, "decode").inc()
            self.clients.dead_letters.send(source=topic, stage="agent-decode", error=exc, raw=payload or b"",
                                           key=key, partition=partition, offset=offset)
            return None
        self.count(topic)
        return record

    def decode_event(self, topic: str, payload: bytes | None, key: bytes | None, partition: int,
                     offset: int) -> MarketEvent | AvroRecord | None:
        """A current market schema's body as the feature engine's event, with no record object; any other
        payload as `decode` has it (a record of an older schema, or a dead letter)."""
        event = self.market_decoder().decode(payload or b"")
        if event is None:
            return self.decode(topic, payload, key, partition, offset)
        self.count(topic)
        return event

    def market_decoder(self) -> MarketDecoder:
        """The current market schemas' bodies straight into `MarketEvent`s (made at first use)."""
        if self._market is None:
            names = {schema: topic for schema, topic in self._names.items() if schema in _MARKET_SCHEMAS}
            self._market = market_decoder(self.clients.serde, names)
        return self._market

    def count(self, topic: str, records: int = 1) -> None:
        """Records of `topic` decoded (`RECORDS_CONSUMED`): here, or by the core's batch fold."""
        consumed = self._consumed.get(topic)
        if consumed is None:
            consumed = self._consumed[topic] = RECORDS_CONSUMED.labels(topic)
        consumed.value += records

    def report(self) -> dict[str, int]:
        """For status.json: records consumed (decoded), dead-lettered, and sent by schema."""
        consumed = sum(child.value for child in list(self._consumed.values()))
        return dict(sorted({**self.counts, "consumed": consumed}.items()))

    def send(self, record: AvroRecord) -> None:
        """Produce to the topic that carries the record's schema, keyed like every market topic."""
        self.clients.producer.send(self._names[record.SCHEMA], record, record.kafka_key())
        self.counts[f"sent:{record.SCHEMA}"] += 1

    def topic_of(self, record: AvroRecord) -> str:
        """The topic that carries the record's schema."""
        return self._names[record.SCHEMA]

    def topic(self, logical: str) -> str:
        return self.clients.topics.name(logical)

    def flush(self) -> None:
        """Every record sent so far is on the broker (before a snapshot claims it was)."""
        self.clients.producer.drain()
