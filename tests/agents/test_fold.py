"""The features agent's batch path (`liqbot_core.MarketFold`) applies the reader's rules without Kafka in the way.

Real capture records as Avro messages (confluent-kafka's own `Message`, built in memory) in fetch order: runs of
one topic partition at a time, as librdkafka hands them over. The fold must give each partition exactly the
vectors of its own merge read to its end folded into its own engine; skip what a state already holds; give
back, in order, the messages it does not read; leave a damaged body to the serde and count it once released;
and hold records while an input may still send something earlier.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message
from liqbot_core import MarketFold

from agents.steps import FEATURE_INPUTS
from decision.features import FeatureEngine, MarketRecord
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from schemas.records import AvroRecord, FeatureVector
from streams.avro import SerdeError
from streams.capture_replay import capture_records
from streams.history.load import partition_of
from streams.merge import EventTimeMerge, ordered
from streams.serde import SingleObjectSerde, market_decoder
from streams.topics import TOPICS
from tests.agents.test_workers import same_record, with_synthetic_liquidations

SERDE = SingleObjectSerde()
PARTITIONS = 3
TOPIC_OF = {spec.schema: spec.name for spec in TOPICS}
DAMAGED = b"\x00\x00\x00\x00\x01 not an avro record"


def real_records() -> list[MarketRecord]:
    """The real captures' market records, with a SYNTHETIC liquidation after every 40th trade of a symbol (the
    captures hold too few for decision points)."""
    records = with_synthetic_liquidations(capture_records(BINANCE_CAPTURE, "binance-usdm")[:20_000], every=40)
    records += with_synthetic_liquidations(capture_records(BYBIT_CAPTURE, "bybit-linear"), every=10)
    return [r for r in records if isinstance(r, MarketRecord)]


def messages(records: list[MarketRecord], run: int = 300) -> list[Message]:
    """Each record as the message its topic partition holds (offsets from 0), in fetch order: `run` messages of
    one topic partition, then of the next."""
    by_source: dict[tuple[str, int], list[Message]] = {}
    for record in records:
        topic, partition = TOPIC_OF[record.SCHEMA], partition_of(record, PARTITIONS)
        held = by_source.setdefault((topic, partition), [])
        held.append(Message(topic=topic, partition=partition, offset=len(held), key=record.kafka_key().encode(),
                            value=SERDE.encode(topic, record)))
    runs = [[held[i:i + run] for i in range(0, len(held), run)] for held in by_source.values()]
    return [m for group in itertools.zip_longest(*runs, fillvalue=[]) for chunk in group for m in chunk]


def expected_vectors(records: list[MarketRecord]) -> list[FeatureVector]:
    """Per partition: its sources read to their end (`ordered`, the merge's order) through its own engine."""
    out = []
    for partition in range(PARTITIONS):
        sources: list[list[tuple[int, int, MarketRecord]]] = []
        for topic in FEATURE_INPUTS:
            rows = [r for r in records if TOPIC_OF[r.SCHEMA] == topic and partition_of(r, PARTITIONS) == partition]
            sources.append([(r.ts_event_ns, i, r) for i, r in enumerate(rows)])
        engine = FeatureEngine()
        out += [v for _, _, r in ordered(sources) if (v := engine.update(r)) is not None]
    return out


def assert_same(got: list[FeatureVector], expected: list[FeatureVector]) -> None:
    """The same vectors, bit for bit (NaN equal to NaN), whatever order the partitions came in."""
    assert [v.event_id for v in sorted(got, key=lambda v: v.event_id)] == sorted(v.event_id for v in expected)
    by_id = {v.event_id: v for v in got}
    assert all(same_record(v, by_id[v.event_id]) for v in expected)


class Agent:
    """What the reader keeps for the fold: per partition an engine, a merge and applied offsets; what it read."""

    def __init__(self, high: Callable[[str, int], int]) -> None:
        self.engines = {p: FeatureEngine() for p in range(PARTITIONS)}
        self.merges: dict[int, EventTimeMerge[Any]] = {p: EventTimeMerge() for p in range(PARTITIONS)}
        for merge in self.merges.values():
            for topic in FEATURE_INPUTS:
                merge.add_source(topic)
        self.applied: dict[int, dict[str, int]] = {p: {} for p in range(PARTITIONS)}
        self.read: dict[tuple[str, int], int] = {}
        self.dead: list[tuple[str, int, int]] = []
        decoder = market_decoder(SERDE, {schema: topic for schema, topic in TOPIC_OF.items()
                                         if topic in FEATURE_INPUTS})
        self.fold = MarketFold(decoder, set(FEATURE_INPUTS), self.fallback, high)
        self.vectors: list[FeatureVector] = []
        self.counts: dict[str, list[int]] = {}

    def fallback(self, topic: str, payload: bytes | None, key: bytes | None, partition: int,
                 offset: int) -> AvroRecord | None:
        try:
            return SERDE.decode(topic, payload or b"")
        except SerdeError:
            self.dead.append((topic, partition, offset))
            return None

    def parts(self, partition: int) -> tuple[Any, EventTimeMerge[Any], dict[str, int]]:
        return self.engines[partition].compiled, self.merges[partition], self.applied[partition]

    def take(self, batch: list[Message]) -> list[Message]:
        rest, points, counts = self.fold.fold(batch, self.parts, self.read)
        self.vectors += [self.engines[p].decision_vector(*point) for p, *point in points]
        for topic, figures in counts.items():
            total = self.counts.setdefault(topic, [0, 0, 0])
            for i, n in enumerate(figures):
                total[i] += n
        return rest


def batches(msgs: list[Message], size: int = 1000) -> list[list[Message]]:
    return [msgs[i:i + size] for i in range(0, len(msgs), size)]


def end_offsets(msgs: list[Message]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for m in msgs:
        key = (m.topic() or "", m.partition() or 0)
        ends[key] = max(ends.get(key, 0), (m.offset() or 0) + 1)
    return ends


@pytest.fixture(scope="module")
def records() -> list[MarketRecord]:
    return real_records()


def test_the_fold_gives_each_partition_its_own_merge_and_engine_read_to_the_end(records: list[MarketRecord]) -> None:
    msgs = messages(records)
    ends = end_offsets(msgs)
    agent = Agent(lambda topic, partition: ends.get((topic, partition), 0))
    for batch in batches(msgs):
        assert agent.take(batch) == []
    expected = expected_vectors(records)
    assert len(expected) > 50
    assert_same(agent.vectors, expected)
    assert sum(n for n, _, _ in agent.counts.values()) == len(records)  # every body decoded in the core
    assert sum(fed for _, fed, _ in agent.counts.values()) == len(records)
    assert agent.read == {key: end - 1 for key, end in ends.items()}
    assert {(t, p): o for p, offsets in agent.applied.items() for t, o in offsets.items()} == agent.read
    assert all(len(merge) == 0 for merge in agent.merges.values())


def test_a_redelivered_batch_changes_nothing_and_other_topics_come_back_in_order(records: list[MarketRecord]) -> None:
    msgs = messages(records[:3000])
    ends = end_offsets(msgs)
    agent = Agent(lambda topic, partition: ends.get((topic, partition), 0))
    for batch in batches(msgs):
        agent.take(batch)
    made, states = len(agent.vectors), [e.compiled.__getstate__() for e in agent.engines.values()]
    assert made > 0
    others = [Message(topic="orders.events", partition=0, offset=i, value=b"?") for i in range(3)]
    eof = Message(topic="market.trades", partition=1, offset=9, error=KafkaError(KafkaError._PARTITION_EOF))
    mixed = [others[0], *msgs[:500], eof, others[1], *msgs[500:700], others[2]]
    assert agent.take(mixed) == [others[0], eof, others[1], others[2]]
    assert len(agent.vectors) == made
    assert [e.compiled.__getstate__() for e in agent.engines.values()] == states


def test_a_damaged_body_goes_to_the_serde_and_is_counted_once_released(records: list[MarketRecord]) -> None:
    msgs = messages(records[:3000])
    book = next(m for m in msgs if m.topic() == "market.book")
    at = msgs.index(book)
    damaged = Message(topic="market.book", partition=book.partition(), offset=book.offset(), value=DAMAGED)
    ends = end_offsets(msgs)
    agent = Agent(lambda topic, partition: ends.get((topic, partition), 0))
    for batch in batches([*msgs[:at], damaged, *msgs[at + 1:]]):
        agent.take(batch)
    assert agent.dead == [("market.book", book.partition(), book.offset())]
    assert agent.counts["market.book"][2] == 1  # released as a dead letter: its offset is done
    assert agent.applied[book.partition() or 0]["market.book"] == ends[("market.book", book.partition() or 0)] - 1
    assert sum(fed for _, fed, _ in agent.counts.values()) == len(records[:3000]) - 1
    assert agent.vectors


def test_records_wait_while_an_input_may_still_send_something_earlier(records: list[MarketRecord]) -> None:
    msgs = messages(records[:3000])
    agent = Agent(lambda topic, partition: -1)  # no fetch has reported a high-water mark: no input is idle
    for batch in batches(msgs):
        agent.take(batch)
    held = sum(len(merge) for merge in agent.merges.values())
    assert held > 0
    early = len(agent.vectors)
    ends = end_offsets(msgs)
    agent.fold = MarketFold(market_decoder(SERDE, {s: t for s, t in TOPIC_OF.items() if t in FEATURE_INPUTS}),
                            set(FEATURE_INPUTS), agent.fallback, lambda t, p: ends.get((t, p), 0))
    for partition in range(PARTITIONS):  # the reader's drain once fetches report the inputs read to their end
        points, _ = agent.fold.drain(partition, agent.parts(partition), agent.read)
        agent.vectors += [agent.engines[p].decision_vector(*point) for p, *point in points]
    assert all(len(merge) == 0 for merge in agent.merges.values())
    expected = expected_vectors(records[:3000])
    assert len(expected) > early
    assert_same(agent.vectors, expected)
