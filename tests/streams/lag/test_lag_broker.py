"""Lag against the real broker: real top-of-book records from the Bybit capture, four real consumer groups.

One keeps up, one is slowed, one stops committing, one is rewound; the monitor (commits read from
`__consumer_offsets`) gives each its Burrow status, and all are OK again once they resume.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from liqbot.config import Settings
from schemas.records import TopOfBook
from streams.clients import Clients
from streams.lag.cluster import ClusterReader
from streams.lag.evaluator import LagConfig, Status
from streams.lag.event_time import EventTimeReader, event_time_topics
from streams.lag.exporter import LagCollector
from streams.lag.monitor import LagMonitor
from streams.lag.offsets_topic import OffsetCommit
from streams.lag.tracker import GroupLag, LagSnapshot, LagTracker
from streams.roundtrip import records_from_captures
from tests.metrics_contract import documented
from tests.streams.lag.workload import PacedConsumer, SteadyProducer

ROUND_S = 0.2  # sample faster than consumers commit (0.5 s), so each commit is judged against a fresh watermark
RATE_PER_S = 40


@pytest.fixture(scope="module")
def books(bybit_capture: Path) -> list[TopOfBook]:
    tops = [r for r in records_from_captures([bybit_capture]).records if isinstance(r, TopOfBook)]
    return sorted(tops, key=lambda r: r.ts_event_ns)  # exchange order: event time grows with the offset


@pytest.fixture
def one_partition(settings: Settings) -> Clients:
    """The test's topics with one partition each, so one consumer's pace is one partition's pace."""
    clients = Clients.connect(replace(settings, kafka=replace(settings.kafka, partitions=1)))
    clients.topics.ensure(clients.admin())
    return clients


@pytest.fixture
def monitor(one_partition: Clients) -> Iterator[LagMonitor]:
    settings = one_partition.settings
    bootstrap = settings.kafka.bootstrap_servers
    events = EventTimeReader(bootstrap, one_partition.serde, event_time_topics(one_partition.topics))
    made = LagMonitor(ClusterReader(bootstrap), LagTracker(LagConfig(intervals=5)), events)
    yield made
    made.close()


def _rounds_until(monitor: LagMonitor, done: Callable[[LagSnapshot], bool], timeout_s: float,
                  seen: list[LagSnapshot]) -> LagSnapshot:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = monitor.round()
        seen.append(snapshot)
        if done(snapshot):
            return snapshot
        time.sleep(ROUND_S)
    last = seen[-1]
    statuses = {g.group: (g.status.name, [p.status.name for p in g.partitions], g.total_lag) for g in last.groups}
    raise AssertionError(f"not reached within {timeout_s} s; last statuses {statuses}")


def _status(snapshot: LagSnapshot, group: str) -> tuple[Status, Status | None]:
    found = snapshot.group(group)
    if found is None:
        return Status.NOTFOUND, None
    return found.status, found.partitions[0].status if found.partitions else None


def _group(snapshot: LagSnapshot, group: str) -> GroupLag:
    found = snapshot.group(group)
    assert found is not None, f"group {group} missing from {[g.group for g in snapshot.groups]}"
    return found


def test_keeping_up_slowed_stopped_and_rewound_groups_get_their_statuses(
        one_partition: Clients, monitor: LagMonitor, books: list[TopOfBook]) -> None:
    topic = one_partition.topics.name("market.top_of_book")
    bootstrap = one_partition.settings.kafka.bootstrap_servers
    tag = uuid.uuid4().hex[:6]
    names = {role: f"lag-{role}-{tag}" for role in ("keeps-up", "slowed", "stopped", "rewound")}
    producer = SteadyProducer(one_partition.producer, topic, books, RATE_PER_S)
    consumers = {role: PacedConsumer(bootstrap, topic, name) for role, name in names.items()}
    producer.start()
    for consumer in consumers.values():
        consumer.start()
    seen: list[LagSnapshot] = []
    try:
        # 1. Everyone keeps up: once the windows are full, every group is OK
        warm = _rounds_until(monitor, lambda s: all(_status(s, n) == (Status.OK, Status.OK) for n in names.values())
                             and all(_group(s, n).complete == 1.0 for n in names.values()), 20, seen)
        assert all(_group(warm, n).max_lag < RATE_PER_S for n in names.values())

        # 2. Slow one, stop one; a moment later rewind one to the start of the log
        consumers["slowed"].mode = "slow"
        consumers["stopped"].mode = "paused"
        stopped_at_ms = time.time_ns() // 1_000_000
        phase2_start = len(seen)
        _rounds_until(monitor, lambda s: _status(s, names["stopped"]) == (Status.ERR, Status.STOP), 10, seen)
        consumers["rewound"].rewind(0)
        wanted = {names["slowed"]: (Status.WARN, Status.WARN), names["rewound"]: (Status.ERR, Status.REWIND)}
        reached: set[str] = set()

        def all_reached(s: LagSnapshot) -> bool:
            reached.update(n for n, want in wanted.items() if _status(s, n) == want)
            return reached == set(wanted)

        last = _rounds_until(monitor, all_reached, 15, seen)
        phase2 = seen[phase2_start:]
        assert {_status(s, names["keeps-up"]) for s in phase2} == {(Status.OK, Status.OK)}
        assert {_status(s, names["stopped"])[1] for s in phase2[-3:]} == {Status.STOP}

        # the stopped group's lag in time and in event time, checked against the records themselves
        stopped = _group(last, names["stopped"]).partitions[0]
        silent_s = (last.time_ms - stopped_at_ms) / 1000
        assert 0.5 * silent_s < stopped.lag_s < silent_s + 1.5
        newest, consumed = books[stopped.high_watermark - 1], books[stopped.committed - 1]
        assert stopped.event_lag_s == (newest.ts_event_ns - consumed.ts_event_ns) / 1e9 > 0
        assert _group(last, names["rewound"]).partitions[0].committed < stopped.committed

        # 3. Everyone resumes at full speed: OK again
        for consumer in consumers.values():
            consumer.mode = "fast"
        _rounds_until(monitor, lambda s: all(_status(s, n) == (Status.OK, Status.OK) for n in names.values()),
                      20, seen)
    finally:
        producer.stop.set()
        producer.join(10)
        for consumer in consumers.values():
            consumer.close()
    assert monitor.stats.malformed == 0


def test_commits_come_from_consumer_offsets_with_the_coordinators_time(
        one_partition: Clients, books: list[TopOfBook]) -> None:
    topic = one_partition.topics.name("market.top_of_book")
    bootstrap = one_partition.settings.kafka.bootstrap_servers
    for book in books[:30]:
        one_partition.producer.send(topic, book, key=book.symbol)
    one_partition.producer.drain(10)
    group = f"lag-commit-{uuid.uuid4().hex[:6]}"
    consumer = PacedConsumer(bootstrap, topic, group)
    reader = ClusterReader(bootstrap)
    try:
        reader.read_commits()  # everything before this test
        before_ms = time.time_ns() // 1_000_000
        consumer.start()
        deadline = time.monotonic() + 15
        commits: list[OffsetCommit] = []
        while time.monotonic() < deadline and not any(c.offset == 30 for c in commits):
            entries = reader.read_commits().entries
            commits += [e.record for e in entries if isinstance(e.record, OffsetCommit) and e.record.group == group]
            time.sleep(0.2)
    finally:
        consumer.close()
        reader.close()
    assert commits and commits[-1].offset == 30 and commits[-1].topic == topic and commits[-1].partition == 0
    assert all(before_ms - 1000 <= c.commit_timestamp_ms <= time.time_ns() // 1_000_000 for c in commits)
    assert [c.commit_timestamp_ms for c in commits] == sorted(c.commit_timestamp_ms for c in commits)


def test_the_exporter_serves_exactly_the_documented_metrics(
        one_partition: Clients, monitor: LagMonitor, books: list[TopOfBook]) -> None:
    topic = one_partition.topics.name("market.top_of_book")
    bootstrap = one_partition.settings.kafka.bootstrap_servers
    for book in books[:50]:
        one_partition.producer.send(topic, book, key=book.symbol)
    one_partition.producer.drain(10)
    consumer = PacedConsumer(bootstrap, topic, f"lag-export-{uuid.uuid4().hex[:6]}")
    consumer.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (monitor.round().group(consumer.group) is None):
            time.sleep(0.3)
        snapshot = monitor.round()
    finally:
        consumer.close()
    registry = CollectorRegistry()
    collector = LagCollector("test")
    registry.register(collector)
    collector.update(snapshot, 0.01)
    families = _scrape(registry)
    assert set(families) == set(documented()["Lag exporter"])
    where = {"cluster_name": "test", "topic": topic, "partition": "0"}
    assert _value(families, "kafka_partition_latest_offset", **where) == 50
    assert _value(families, "kafka_consumergroup_group_offset", group=consumer.group, **where) == 50
    assert _value(families, "kafka_consumergroup_group_lag", group=consumer.group, **where) == 0
    assert _value(families, "liqbot_consumergroup_event_lag_seconds", group=consumer.group, topic=topic,
                  partition="0") == 0
    status = {s.labels["status"]: s.value for s in families["liqbot_consumergroup_status"].samples
              if s.labels["group"] == consumer.group}
    assert status == {"OK": 1.0, "WARN": 0.0, "ERR": 0.0, "NOTFOUND": 0.0}
    collector.failed()
    after = _scrape(registry)
    assert after["kafka_consumergroup_group_lag"].samples == []  # evicted after a failed round
    assert _value(after, "liqbot_lag_poll_errors_total") == 1


def _scrape(registry: CollectorRegistry) -> dict[str, Metric]:
    """Families by the names a scrape shows (a counter's family is named without `_total`: put it back), without
    prometheus-client's own `_created` series."""
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {f.name + ("_total" if f.type == "counter" else ""): f for f in families if not f.name.endswith("_created")}


def _value(families: dict[str, Metric], name: str, **labels: str) -> float:
    family = families[name.removesuffix("_total") if name not in families else name]
    values = [s.value for s in family.samples if s.name == name and s.labels == labels]
    assert len(values) == 1, f"{name}{labels}: {len(values)} samples in {family.samples}"
    return values[0]
