"""Agents as real worker processes on the real broker: the symbol split, the survivor's takeover, SIGKILL restarts.

Market records are the real Bybit and Binance captures. Neither holds a liquidation burst, so the decision points
are SYNTHETIC liquidations (event ids `synthetic-...`, feed "synthetic") placed at real trades; every other
record is real.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from schemas.records import AvroRecord, Liquidation, Trade
from streams.capture_replay import capture_records
from streams.clients import Clients

REPO = Path(__file__).resolve().parents[2]


def with_synthetic_liquidations(records: list[AvroRecord], every: int) -> list[AvroRecord]:
    """The real records, and after every `every`-th trade of a symbol a SYNTHETIC liquidation at its price and time."""
    out: list[AvroRecord] = []
    seen: dict[tuple[str, str], int] = {}
    for record in records:
        out.append(record)
        if isinstance(record, Trade):
            n = seen[(record.venue, record.symbol)] = seen.get((record.venue, record.symbol), 0) + 1
            if n % every == 0:
                out.append(Liquidation(
                    venue=record.venue, symbol=record.symbol, event_id=f"synthetic-{record.event_id}",
                    ts_event_ns=record.ts_event_ns, ts_exchange_ns=record.ts_exchange_ns, ts_recv_ns=record.ts_recv_ns,
                    position_side="LONG" if n % (2 * every) else "SHORT", bankruptcy_price=record.price,
                    size=record.size, feed="synthetic"))
    return out


def feed(settings: Settings, records: list[AvroRecord]) -> None:
    clients = Clients.connect(settings)
    clients.topics.ensure(clients.admin())
    names = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs}
    for record in records:
        clients.producer.send(names[record.SCHEMA], record, record.kafka_key())
    clients.producer.drain()


class Worker:
    """`liqbot agents worker` as its own process, with its own home (status file, Faust data)."""

    def __init__(self, settings: Settings, home: Path) -> None:
        self.home = home
        env = {**os.environ, "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix,
               "LIQBOT_PARTITIONS": str(settings.kafka.partitions), "LIQBOT_HOME": str(home)}
        home.mkdir(parents=True, exist_ok=True)
        self.log = (home / "worker.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liqbot.cli", "-v", "agents", "worker", "--bootstrap",
             settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def status(self) -> dict[str, Any]:
        path = self.home / "agents" / "status.json"
        return json.loads(path.read_text()) if path.exists() else {"partitions": [], "symbols": {}, "counts": {}}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()

    def tail(self) -> str:
        return "".join((self.home / "worker.log").read_text().splitlines(keepends=True)[-40:])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Settings, str], Worker]]:
    started: list[Worker] = []

    def start(settings: Settings, name: str) -> Worker:
        worker = Worker(settings, tmp_path / name)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


class Collector:
    """Every record of some topics so far, by event id (a redelivered duplicate must be identical)."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        clients = Clients.connect(settings)
        clients.topics.ensure(clients.admin())
        self.consumer = clients.consumer([clients.topics.name(t) for t in topics], f"collect-{uuid.uuid4().hex}")
        self.by_topic: dict[str, dict[str, AvroRecord]] = {}
        self.duplicates = 0
        self.names = {clients.topics.name(t): t for t in topics}

    def poll(self, seconds: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = self.consumer.poll(0.1)
            if got is None:
                continue
            record = got.record
            key = str(getattr(record, "event_id", None) or getattr(record, "client_order_id", ""))
            known = self.by_topic.setdefault(self.names[got.topic], {})
            if key in known:
                self.duplicates += 1
                assert same_record(known[key], record), f"redelivered {key} differs"
            known[key] = record

    def count(self, topic: str) -> int:
        return len(self.by_topic.get(topic, {}))

    def counter(self, topic: str) -> Callable[[], int]:
        return lambda: self.count(topic)

    def wait(self, condition: Callable[[], bool], timeout_s: float, what: str, worker: Worker) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; worker log:\n{worker.tail()}"
            self.poll()

    def settle(self, topics: list[str], quiet_s: float = 4.0) -> None:
        """Until nothing new arrived on `topics` for `quiet_s`."""
        last = [self.count(t) for t in topics]
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_s:
            self.poll()
            now = [self.count(t) for t in topics]
            if now != last:
                last, quiet_since = now, time.monotonic()


@pytest.fixture
def collectors() -> Iterator[Callable[[Settings, list[str]], Collector]]:
    made: list[Collector] = []

    def make(settings: Settings, topics: list[str]) -> Collector:
        made.append(Collector(settings, topics))
        return made[-1]

    yield make
    for collector in made:
        collector.consumer.close()


def same_record(a: AvroRecord, b: AvroRecord) -> bool:
    """Equal, with NaN equal to NaN inside feature vectors."""
    if type(a) is not type(b):
        return False
    da, db = a.to_avro(), b.to_avro()
    return da.keys() == db.keys() and all(_same(da[k], db[k]) for k in da)


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(p, q) for p, q in zip(x, y, strict=True))
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    return bool(x == y)


def late(*workers: Worker) -> int:
    """Liquidations the workers' feature engines skipped as too late (counted, never silently lost)."""
    return sum(w.status().get("steps", {}).get("features", {}).get("late:liqbot.Liquidation", 0) for w in workers)


def test_two_workers_split_the_symbols_and_the_survivor_takes_over(settings: Settings, workers: Any,
                                                                   collectors: Any) -> None:
    records = with_synthetic_liquidations(capture_records(BYBIT_CAPTURE, "bybit-linear"), every=10)
    half = len(records) // 2
    liquidations = {r.event_id for r in records if isinstance(r, Liquidation)}
    first = sum(isinstance(r, Liquidation) for r in records[:half])
    a, b = workers(settings, "a"), workers(settings, "b")
    out = collectors(settings, ["features"])

    def split() -> bool:
        owned = a.status()["partitions"], b.status()["partitions"]
        return bool(owned[0]) and bool(owned[1]) and sorted(owned[0] + owned[1]) == [0, 1, 2]

    out.wait(split, 120, "two workers to split the partitions", a)
    feed(settings, records[:half])
    out.wait(lambda: out.count("features") + late(a, b) >= first, 120, f"{first} decision points", a)
    time.sleep(2)  # the status files are written every second
    for agent in ("features", "decide"):
        mine, theirs = set(a.status()["symbols"][agent]), set(b.status()["symbols"][agent])
        assert not mine & theirs, f"{agent}: {mine & theirs} held by both workers"
    # the four linear perpetuals and two spot pairs land where their keys hash to; the 1,357 instrument
    # listings spread over every partition, so each worker decides for hundreds of symbols
    traded = {f"{r.venue}/{r.symbol}" for r in records[:half] if isinstance(r, Trade)}
    assert set(a.status()["symbols"]["features"]) | set(b.status()["symbols"]["features"]) >= traded
    assert min(len(a.status()["symbols"]["decide"]), len(b.status()["symbols"]["decide"])) > 100

    a.stop(signal.SIGTERM)
    out.wait(lambda: b.status()["partitions"] == [0, 1, 2], 60, "the survivor to own every partition", b)
    feed(settings, records[half:])
    # the survivor restored the leaver's partitions from their changelogs, so its counts cover every partition
    out.wait(lambda: out.count("features") + late(b) >= len(liquidations), 120, "every decision point", b)
    out.settle(["features"])
    assert set(out.by_topic["features"]) <= liquidations
    assert out.count("features") + late(b) == len(liquidations)
    assert out.count("features") > len(liquidations) // 2
    assert traded <= set(b.status()["symbols"]["features"])


def test_a_worker_killed_mid_stream_restarts_to_the_same_output(settings: Settings, workers: Any,
                                                                 collectors: Any) -> None:
    records = with_synthetic_liquidations(capture_records(BINANCE_CAPTURE, "binance-usdm")[:30_000], every=40)
    records += with_synthetic_liquidations(capture_records(BYBIT_CAPTURE, "bybit-linear"), every=10)
    n = sum(isinstance(r, Liquidation) for r in records)
    topics = ["features", "predictions", "orders.intents"]
    runs = []
    for kill in (False, True):
        run = replace(settings, kafka=replace(settings.kafka, topic_prefix=f"{settings.kafka.topic_prefix}{kill}."))
        feed(run, records)
        out = collectors(run, topics)
        vectors = out.counter("features")
        worker = workers(run, f"run-{kill}")
        if kill:
            out.wait(lambda v=vectors: v() >= n // 3, 120, "a third of the vectors", worker)
            worker.stop(signal.SIGKILL)
            worker = workers(run, "restarted")
        out.wait(lambda v=vectors: v() >= n, 180, f"{n} vectors", worker)
        out.settle(topics)
        runs.append(out)
    uninterrupted, restarted = runs
    assert uninterrupted.count("features") == restarted.count("features") == n
    for topic in topics:
        assert uninterrupted.by_topic.get(topic, {}).keys() == restarted.by_topic.get(topic, {}).keys(), topic
        for key, record in uninterrupted.by_topic.get(topic, {}).items():
            assert same_record(record, restarted.by_topic[topic][key]), f"{topic} {key} differs after the restart"
    assert uninterrupted.count("predictions") > 0
