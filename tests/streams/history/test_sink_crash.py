"""Exactly once and nothing lost: the sink SIGKILLed ten times while records flow at 10,000/s, and ClickHouse
refusing inserts mid-run; the rows in ClickHouse are compared with what Kafka holds, partition by partition."""

from __future__ import annotations

import hashlib
import random
import signal
import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from liqbot.config import Settings
from liqbot.data import BYBIT_CAPTURE
from schemas.records import AvroRecord
from streams.capture_replay import capture_records
from streams.clients import Clients

Store = Any  # the fixture's class lives in conftest.py
TABLES = ("book_updates", "top_of_book", "instruments", "tickers", "trades")  # what the Bybit capture fills
TOTAL = "SELECT " + " + ".join(f"(SELECT count() FROM {t})" for t in TABLES)


class Flow(threading.Thread):
    """Produces the real Bybit capture's records, cycled (each at a new offset), at `rate` a second until stopped."""

    def __init__(self, settings: Settings, rate: int = 10_000) -> None:
        super().__init__(name="flow", daemon=True)
        self.settings, self.rate = settings, rate
        self.halt = threading.Event()
        self.sent = 0
        self.elapsed_s = 0.0

    def run(self) -> None:
        clients = Clients.connect(self.settings)
        specs = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs}
        items = [(specs[r.SCHEMA], r, r.kafka_key()) for r in capture_records(BYBIT_CAPTURE, "bybit-linear")]
        started = time.monotonic()
        while not self.halt.is_set():
            due = min(int((time.monotonic() - started) * self.rate) - self.sent, 2_000)
            if due <= 0:
                time.sleep(0.005)
                continue
            clients.producer.send_all([items[(self.sent + i) % len(items)] for i in range(due)])
            self.sent += due
        self.elapsed_s = time.monotonic() - started
        clients.producer.drain()


def _produce_capture(clients: Clients) -> list[tuple[str, AvroRecord, str | bytes]]:
    """The real Bybit capture's records, produced once to their topics: (topic, record, key) each."""
    clients.topics.ensure(clients.admin())
    specs = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs}
    items: list[tuple[str, AvroRecord, str | bytes]] = [
        (specs[r.SCHEMA], r, r.kafka_key()) for r in capture_records(BYBIT_CAPTURE, "bybit-linear")]
    clients.producer.send_all(items)
    clients.producer.drain()
    return items


def _total(history_store: Store) -> int:
    return int(history_store.rows(TOTAL)[0][0])


def _kafka_digests(settings: Settings, clients: Clients) -> dict[tuple[str, int], tuple[int, int, int, str]]:
    """Per topic-partition of `TABLES`: (count, first, last offset, sha256 of (offset, event_id, ts)) in Kafka."""
    topics = [clients.topics.name(s) for s in clients.topics.specs if s.table in TABLES]
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "digest",
                         "enable.auto.commit": False})
    rows: dict[tuple[str, int], list[tuple[int, str, int]]] = defaultdict(list)
    try:
        for topic in topics:
            for partition in range(settings.kafka.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                consumer.assign([TopicPartition(topic, partition, low)])
                found = rows[(topic, partition)]
                while (upto := found[-1][0] + 1 if found else low) < high:
                    for m in consumer.consume(min(10_000, high - upto), timeout=5):
                        record: AvroRecord = clients.serde.decode(topic, m.value() or b"")
                        found.append((m.offset() or 0, record.event_id,  # type: ignore[attr-defined]
                                      record.ts_event_ns))  # type: ignore[attr-defined]
    finally:
        consumer.close()
    return {key: _digest(found) for key, found in rows.items() if found}


def _digest(rows: list[tuple[int, str, int]]) -> tuple[int, int, int, str]:
    ordered = sorted(rows)
    text = "\n".join(f"{o} {e} {t}" for o, e, t in ordered)
    return len(ordered), ordered[0][0], ordered[-1][0], hashlib.sha256(text.encode()).hexdigest()


def _store_digests(history_store: Store) -> dict[tuple[str, int], tuple[int, int, int, str]]:
    rows: dict[tuple[str, int], list[tuple[int, str, int]]] = defaultdict(list)
    for table in TABLES:
        for topic, partition, offset, event_id, ts in history_store.rows(
                f"SELECT _topic, _partition, _offset, event_id, toUnixTimestamp64Nano(ts_event_ns) FROM {table}"):
            rows[(topic, int(partition))].append((int(offset), event_id, int(ts)))
    return {key: _digest(found) for key, found in rows.items()}


def _committed(settings: Settings, clients: Clients) -> dict[tuple[str, int], int]:
    topics = [clients.topics.name(s) for s in clients.topics.specs if s.table in TABLES]
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    request = ConsumerGroupTopicPartitions(
        f"{settings.kafka.topic_prefix}liqbot-sink",
        [TopicPartition(t, p) for t in topics for p in range(settings.kafka.partitions)])
    result = admin.list_consumer_group_offsets([request])[request.group_id].result(timeout=30)
    # a partition that never had a record has no commit (-1001): nothing is behind it either
    return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in result.topic_partitions}


def test_ten_sigkills_at_ten_thousand_records_a_second_lose_and_repeat_nothing(
        settings: Settings, clients: Clients, history_store: Store) -> None:
    clients.topics.ensure(clients.admin())
    rng = random.Random(12)
    flow = Flow(settings)
    flow.start()
    kills_after_rows: list[int] = []
    try:
        for _ in range(10):
            sink = history_store.sink(settings)
            landed = _total(history_store)
            history_store.wait(TOTAL, landed + 1, sink)  # it took records since it started: kill it mid-flow
            time.sleep(rng.uniform(0.0, 0.4))
            sink.stop(signal.SIGKILL)
            kills_after_rows.append(landed)
    finally:
        flow.halt.set()
        flow.join(timeout=60)
    assert flow.sent / flow.elapsed_s > 9_000, f"the flow held {flow.sent / flow.elapsed_s:,.0f} records/s"
    assert kills_after_rows == sorted(kills_after_rows) and kills_after_rows[-1] > 0
    with history_store.sink(settings) as sink:
        assert history_store.wait(TOTAL, flow.sent, sink, timeout_s=300) == flow.sent
        time.sleep(1.0)  # nothing more may come: a duplicate would land now
        stored = _store_digests(history_store)
    kafka = _kafka_digests(settings, clients)
    assert sum(n for n, *_ in kafka.values()) == flow.sent
    assert stored == kafka


def _landed_and_committed(settings: Settings, clients: Clients, history_store: Store, sink: Any,
                          n: int) -> dict[tuple[str, int], int]:
    """Waits for `n` rows in ClickHouse and their commit; the group's committed offsets, which sum to `n`."""
    history_store.wait(TOTAL, n, sink)
    time.sleep(1.0)  # the commit follows the insert
    committed = _committed(settings, clients)
    assert sum(committed.values()) == n
    return committed


def _refuse_inserts(history_store: Store, refuse: bool) -> None:
    """chDB: ClickHouse's own refusal, 'Too many parts', by lowering the limit below the parts there are."""
    for table in TABLES:
        change = "MODIFY SETTING parts_to_throw_insert = 1" if refuse else "RESET SETTING parts_to_throw_insert"
        history_store.rows(f"ALTER TABLE {table} {change}")


def test_clickhouse_refusing_inserts_holds_the_commits_and_loses_nothing(
        settings: Settings, clients: Clients, history_store: Store) -> None:
    items = _produce_capture(clients)
    records = [record for _, record, _ in items]
    with history_store.sink(settings) as sink:
        before = _landed_and_committed(settings, clients, history_store, sink, len(records))
        _refuse_inserts(history_store, True)
        clients.producer.send_all(items)
        clients.producer.drain()
        deadline = time.monotonic() + 60
        while "waiting for ClickHouse to take an insert" not in sink.tail(200):
            assert time.monotonic() < deadline, sink.tail()
            time.sleep(0.2)
        assert "Too many parts" in sink.tail(200) and "nothing is committed meanwhile" in sink.tail(200)
        time.sleep(3.0)  # retrying: still nothing new in ClickHouse, and no commit moved
        assert _total(history_store) == len(records)
        assert _committed(settings, clients) == before
        _refuse_inserts(history_store, False)
        history_store.wait(TOTAL, 2 * len(records), sink)
        assert "ClickHouse takes inserts again" in sink.tail(200)
        time.sleep(1.0)
        assert _total(history_store) == 2 * len(records)
        assert sum(_committed(settings, clients).values()) == 2 * len(records)
        stored = _store_digests(history_store)
    assert stored == _kafka_digests(settings, clients)


def _commit_as_the_sink(settings: Settings, offsets: dict[tuple[str, int], int]) -> None:
    """Commits `offsets` for the sink's group, taking its static membership as a restarted sink would."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"{settings.kafka.topic_prefix}liqbot-sink", "group.instance.id": "sink-1",
                         "enable.auto.commit": False})
    assigned = threading.Event()
    consumer.subscribe(sorted({t for t, _ in offsets}), on_assign=lambda *_: assigned.set())
    deadline = time.monotonic() + 60
    while not assigned.is_set():
        assert time.monotonic() < deadline, "the group gave no assignment"
        consumer.poll(0.2)
    consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    consumer.close()


def test_rows_that_landed_without_their_commit_are_not_written_again(
        settings: Settings, clients: Clients, history_store: Store) -> None:
    """The crash between insert and commit, made exact: the group's commit put back to half of what landed."""
    items = _produce_capture(clients)
    records = [record for _, record, _ in items]
    with history_store.sink(settings) as sink:
        committed = _landed_and_committed(settings, clients, history_store, sink, len(records))
        landed = _store_digests(history_store)
    _commit_as_the_sink(settings, {tp: offset // 2 for tp, offset in committed.items() if offset})
    assert sum(_committed(settings, clients).values()) < len(records) * 3 // 4
    with history_store.sink(settings) as sink:
        clients.producer.send_all(items[:500])
        clients.producer.drain()
        history_store.wait(TOTAL, len(records) + 500, sink)
        time.sleep(1.0)
        assert _total(history_store) == len(records) + 500
        after = _store_digests(history_store)
    assert "ClickHouse holds" in sink.tail(400)
    assert after == _kafka_digests(settings, clients)
    assert all(after[tp][3] != digest[3] for tp, digest in landed.items() if after[tp][0] > digest[0])


@pytest.mark.parametrize("history_store", ["http"], indirect=True)
@pytest.mark.parametrize("mode", ["drop", "lost_reply"])
def test_a_server_dropping_connections_holds_the_commits_and_loses_nothing(
        settings: Settings, clients: Clients, history_store: Store, mode: str) -> None:
    """The HTTP path: connections closed unanswered ("drop"), or each statement run and its reply lost
    ("lost_reply": the insert landed, the sink saw an error and retries it; its token keeps it from landing twice)."""
    items = _produce_capture(clients)
    with history_store.sink(settings) as sink:
        before = _landed_and_committed(settings, clients, history_store, sink, len(items))
        history_store.outage(8.0, mode)
        out_until = time.monotonic() + 8.0
        clients.producer.send_all(items)
        clients.producer.drain()
        time.sleep(4.0)
        assert _committed(settings, clients) == before  # the sink waits: nothing committed meanwhile
        time.sleep(max(0.0, out_until - time.monotonic()) + 0.5)  # the test's own queries would be dropped too
        history_store.wait(TOTAL, 2 * len(items), sink, timeout_s=120)
        assert "waiting for ClickHouse to take an insert" in sink.tail(300)
        time.sleep(1.0)
        assert _total(history_store) == 2 * len(items)
        assert sum(_committed(settings, clients).values()) == 2 * len(items)
        stored = _store_digests(history_store)
    assert stored == _kafka_digests(settings, clients)
