"""Agents as real worker processes on the real broker: the symbol split, the survivor's takeover, SIGKILL restarts.

Market records are the real Bybit and Binance captures. Neither holds a liquidation burst, so the decision points
are SYNTHETIC liquidations (event ids `synthetic-...`, feed "synthetic") placed at real trades; every other
record is real.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, TopicPartition

from agents.steps import FEATURE_INPUTS
from decision.features import FeatureEngine
from decision.scoring import Scorer
from liqbot.children import WorkerProcess as Worker
from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from schemas.records import AvroRecord, DeadLetter, Instrument, Liquidation, OrderEvent, Trade
from streams.bybit.private_loopback import LoopbackBybitPrivate
from streams.bybit.signing import Credentials
from streams.capture_replay import capture_records
from streams.clients import Clients
from streams.history.load import partition_of
from streams.merge import EventTimeMerge
from streams.topics import TOPICS
from training.registry import SCENARIO_REGISTRY, ModelRegistry
from training.scenario import WickScenario, generate

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


def event_time_order(records: list[Any]) -> list[Any]:
    """The order the features agent folds records in: its merge of the market topics (ties by topic, then offset)."""
    merge: EventTimeMerge[Any] = EventTimeMerge()
    for topic in FEATURE_INPUTS:
        merge.add_source(topic)
    topic_of = {spec.schema: spec.name for spec in TOPICS}
    for index, record in enumerate(records):
        merge.push(topic_of[record.SCHEMA], record.ts_event_ns, index, record)
    return merge.release(lambda _: True)


def feed(settings: Settings, records: list[AvroRecord], *, paced_s: float | None = None) -> None:
    """Produce `records`; with `paced_s`, as ingest writes them to a running worker: each `paced_s` of event time
    on the broker before the next (a burst lets a fetch find one topic's batch ahead of another's by far more
    than the features' lateness, and the merge's idle rule then skips the one behind as late)."""
    clients = Clients.connect(settings)
    clients.topics.ensure(clients.admin())
    names = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs}
    due_ns = None
    for record in records:
        if paced_s is not None:
            at: int = cast(Any, record).ts_event_ns  # every market record has one
            if due_ns is not None and at >= due_ns:
                clients.producer.drain()  # the slice before `at` is on the broker
            if due_ns is None or at >= due_ns:
                due_ns = at + int(paced_s * 1e9)
        clients.producer.send(names[record.SCHEMA], record, record.kafka_key())
    clients.producer.drain()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(settings: Settings, name: str, *options: str, env: dict[str, str] | None = None) -> Worker:
        worker = Worker(settings, tmp_path / name, *options, env=env, verbose=True)
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
        self.conflicts: list[str] = []  # an id seen twice with different content
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
                if not same_record(known[key], record):
                    self.conflicts.append(f"{self.names[got.topic]} {key}")
                continue
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
    decided = b.status()["applied"]["decide"]
    feed(settings, records[half:])
    # the survivor restored the leaver's partitions from their changelogs, so its counts cover every partition
    out.wait(lambda: out.count("features") + late(b) >= len(liquidations), 120, "every decision point", b)
    out.settle(["features"])
    assert set(out.by_topic["features"]) <= liquidations
    assert out.count("features") + late(b) == len(liquidations)
    assert out.count("features") > len(liquidations) // 2
    assert traded <= set(b.status()["symbols"]["features"])
    # decide's merge also waits on order events and positions, which got nothing new: read to their end, they
    # must not hold the market back (they did, before end-of-partition events counted as read)
    assert b.status()["applied"]["decide"] > decided


def test_a_worker_killed_mid_stream_restarts_to_the_same_output(settings: Settings, workers: Any,
                                                                 collectors: Any) -> None:
    records = with_synthetic_liquidations(capture_records(BINANCE_CAPTURE, "binance-usdm")[:30_000], every=40)
    records += with_synthetic_liquidations(capture_records(BYBIT_CAPTURE, "bybit-linear"), every=10)
    n = sum(isinstance(r, Liquidation) for r in records)
    topics = ["features", "predictions", "orders.intents"]
    often = ("--snapshot-every", "1")  # so that the restart begins from saved state, not from offset 0
    runs: list[Collector] = []
    for kill in (False, True):
        run = replace(settings, kafka=replace(settings.kafka, topic_prefix=f"{settings.kafka.topic_prefix}{kill}."))
        feed(run, records)
        out = collectors(run, topics)
        vectors = out.counter("features")
        worker = workers(run, f"run-{kill}", *often)
        if kill:
            out.wait(lambda v=vectors: v() >= n // 3, 120, "a third of the vectors", worker)
            worker.stop(signal.SIGKILL)
            worker = workers(run, "restarted", *often)
        out.wait(lambda v=vectors: v() >= n, 180, f"{n} vectors", worker)
        if runs:  # a restarted worker may still be catching up after the vectors are in: wait for as many outputs
            for topic in topics:
                expected = runs[0].count(topic)
                seen = out.counter(topic)
                out.wait(lambda c=seen, e=expected: c() >= e, 120, f"{expected} records on {topic}", worker)
        out.settle(topics)
        runs.append(out)
    uninterrupted, restarted = runs
    assert uninterrupted.conflicts == restarted.conflicts == []
    assert uninterrupted.count("features") == restarted.count("features") == n
    for topic in topics:
        assert uninterrupted.by_topic.get(topic, {}).keys() == restarted.by_topic.get(topic, {}).keys(), topic
        for key, record in uninterrupted.by_topic.get(topic, {}).items():
            assert same_record(record, restarted.by_topic[topic][key]), f"{topic} {key} differs after the restart"
    assert uninterrupted.count("predictions") > 0


def per_partition_vectors(records: list[AvroRecord], partitions: int) -> dict[str, AvroRecord]:
    """What a features agent makes of records fed before it starts: each partition's own merge of the market
    topics read to their end, folded into its own engine (the in-memory oracle of the batch fold)."""
    by_partition: dict[int, list[AvroRecord]] = {}
    for record in records:
        by_partition.setdefault(partition_of(record, partitions), []).append(record)
    vectors: dict[str, AvroRecord] = {}
    for rows in by_partition.values():
        engine = FeatureEngine()
        for record in event_time_order(rows):
            if (vector := engine.update(record)) is not None:
                vectors[vector.event_id] = vector
    return vectors


def _settled_status(worker: Worker, timeout_s: float = 30.0) -> dict[str, Any]:
    """The worker's status once it names every agent's records (it is written every few seconds)."""
    deadline = time.monotonic() + timeout_s
    while not any((status := worker.status()).get("applied", {}).values()):
        assert time.monotonic() < deadline, f"no status with records applied; worker log:\n{worker.tail()}"
        time.sleep(0.5)
    return status


def test_a_features_worker_folds_whole_batches_in_the_core_and_restarts_to_the_same_vectors(
        settings: Settings, workers: Any, collectors: Any) -> None:
    """`--agents features` alone: the core folds each consumed batch (`MarketFold`: freshness, decode, merge,
    fold). Real records (with SYNTHETIC liquidations for decision points) and one damaged body among them: the
    worker, killed mid-stream and restarted from its snapshot, makes exactly the in-memory engine's vectors, and
    the damaged body is dead-lettered and counted."""
    records = with_synthetic_liquidations(capture_records(BINANCE_CAPTURE, "binance-usdm")[:30_000], every=40)
    records += with_synthetic_liquidations(capture_records(BYBIT_CAPTURE, "bybit-linear"), every=10)
    expected = per_partition_vectors(records, settings.kafka.partitions)
    assert len(expected) == sum(isinstance(r, Liquidation) for r in records) > 100
    half = len(records) // 2
    feed(settings, records[:half])
    clients = Clients.connect(settings)
    damaged = b"\x00\x00\x00\x00\x01 not an avro record"
    clients.producer.send_raw(clients.topics.name("market.book"), damaged, "BTCUSDT")
    clients.producer.drain()
    feed(settings, records[half:])
    out = collectors(settings, ["features"])
    often = ("--agents", "features", "--snapshot-every", "1")
    worker = workers(settings, "folding", *often)
    out.wait(lambda: out.count("features") >= len(expected) // 3, 120, "a third of the vectors", worker)
    worker.stop(signal.SIGKILL)
    worker = workers(settings, "restarted", *often)
    out.wait(lambda: out.count("features") >= len(expected), 180, f"{len(expected)} vectors", worker)
    out.settle(["features"])

    assert out.conflicts == []
    assert out.by_topic["features"].keys() == expected.keys()
    assert all(same_record(v, out.by_topic["features"][k]) for k, v in expected.items())
    applied = _settled_status(worker)["applied"]["features"]
    assert 0 < applied < len(records)  # the restarted worker resumed from a snapshot, not from the first offsets
    letters = clients.consumer([clients.topics.name("deadletter")], f"letters-{uuid.uuid4().hex}")
    try:
        found = [got.record for _ in range(100) if (got := letters.poll(0.2)) is not None
                 and isinstance(got.record, DeadLetter)]
    finally:
        letters.close()
    book = clients.topics.name("market.book")
    assert {(d.source, d.stage, d.raw) for d in found} == {(book, "agent-decode", damaged)}


def test_the_synthetic_wick_scenario_drives_the_agents_to_paper_orders(settings: Settings, workers: Any,
                                                                       collectors: Any) -> None:
    """SYNTHETIC market (training/scenario.py) and the model fitted on it: the order path end to end.

    Features and predictions must equal the same steps run in one loop over the records (replay); orders must
    each be accepted and end (expired, or filled and exited), with positions for the fills.
    """
    scenario = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900,
                                     bursts=4))
    engine, scorer = FeatureEngine(), Scorer(ModelRegistry(SCENARIO_REGISTRY).load())
    vectors = [v for r in event_time_order(scenario.market_records()) if (v := engine.update(r)) is not None]
    predictions = [p for v in vectors if v.side and (p := scorer.predict(v, v.side)) is not None]
    assert len(vectors) == sum(isinstance(r, Liquidation) for r in scenario.records) > 10

    feed(settings, list(scenario.records))
    out = collectors(settings, ["features", "predictions", "orders.intents", "orders.events", "positions"])
    worker = workers(settings, "scenario", "--models", str(SCENARIO_REGISTRY))
    out.wait(lambda: out.count("predictions") >= len(predictions), 120, "every prediction", worker)
    out.settle(["features", "predictions", "orders.intents", "orders.events", "positions"], quiet_s=6)

    assert out.conflicts == []
    assert all(same_record(v, out.by_topic["features"][v.event_id]) for v in vectors)
    assert all(same_record(p, out.by_topic["predictions"][p.event_id]) for p in predictions)
    intents = out.by_topic.get("orders.intents", {})
    assert intents, f"no intent; decide counts: {worker.status()['steps'].get('decide')}"
    assert {i.prediction_id for i in intents.values()} <= {p.event_id for p in predictions}
    events = list(out.by_topic.get("orders.events", {}).values())
    by_order: dict[str, list[OrderEvent]] = {}
    for event in sorted(events, key=lambda e: (e.ts_event_ns, e.event_id)):
        by_order.setdefault(event.client_order_id, []).append(event)
    # fed at full speed, the execute agent may have read a symbol's whole tape before an intent reaches it: the
    # order is then placed after the last trade and rests, as it would live until the next trade
    last_trade = {r.symbol: r.ts_event_ns for r in scenario.records if isinstance(r, Trade)}
    for client_id, intent in intents.items():
        life = [e.status for e in by_order[client_id]]
        assert life[0] in {"ACCEPTED", "REJECTED"}, life
        accepted_ns = by_order[client_id][0].ts_event_ns
        if life[-1] == "ACCEPTED":
            assert accepted_ns + intent.valid_for_ms * 1_000_000 >= last_trade[intent.symbol], life
        else:
            assert life[-1] in {"EXPIRED", "FILLED", "REJECTED", "CANCELLED"}, life
    fills = [e for e in events if e.status == "FILLED"]
    assert out.count("positions") >= len(fills)


def test_agents_split_over_two_processes_still_reach_orders_and_commit_what_they_saved(
        settings: Settings, workers: Any, collectors: Any) -> None:
    """`--agents`: features and predict in one worker, decide and execute in another (SYNTHETIC wick scenario)."""
    scenario = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900,
                                     bursts=4))
    feed(settings, list(scenario.records))
    topics = ["features", "predictions", "orders.intents", "orders.events"]
    out = collectors(settings, topics)
    models = ("--models", str(SCENARIO_REGISTRY))
    upstream = workers(settings, "upstream", *models, "--agents", "features,predict")
    downstream = workers(settings, "downstream", *models, "--agents", "decide,execute")
    out.wait(lambda: out.count("orders.intents") > 0 and out.count("orders.events") > 0, 120, "orders", downstream)
    out.settle(topics)
    assert set(upstream.status()["applied"]) == {"features", "predict"}
    assert set(downstream.status()["applied"]) == {"decide", "execute"}
    assert out.count("features") == sum(isinstance(r, Liquidation) for r in scenario.records)
    assert out.conflicts == []

    upstream.stop()  # SIGTERM: a clean hand-over saves every partition and commits its offsets
    clients = Clients.connect(settings)
    group = f"{settings.kafka.topic_prefix}liqbot-agents.features-predict"
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": group})
    try:
        parts = [TopicPartition(clients.topics.name(t), p) for t in FEATURE_INPUTS
                 for p in range(settings.kafka.partitions)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=10)}
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    finally:
        consumer.close()
    read = {key: end for key, end in ends.items() if end > 0}
    assert read and {key: committed[key] for key in read} == read  # the group's lag is 0: all processed and saved


def worker_that_stops(settings: Settings, home: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`liqbot agents worker` expected to stop by itself at start-up (bad options, no model): its exit and output."""
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix, "LIQBOT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "liqbot.cli", "agents", "worker", *options, "--bootstrap",
         settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_an_unknown_agent_name_is_refused_with_the_choices(settings: Settings, tmp_path: Path) -> None:
    done = worker_that_stops(settings, tmp_path, "--agents", "features,forecast")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "unknown agents ['forecast']: choose among features, predict, decide, execute" in done.stderr


def test_live_sends_signed_post_only_orders_to_bybit_and_never_leaks_the_keys(
        settings: Settings, workers: Any, collectors: Any, peer_in_thread: Any) -> None:
    """`--live` against the loopback Bybit (it recomputes every signature); the market is the SYNTHETIC wick
    scenario, relabelled as bybit-linear so that the live venue takes its intents."""
    key, secret = f"LQKEY{uuid.uuid4().hex[:14]}", f"LQSECRET{uuid.uuid4().hex}"
    scenario = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900,
                                     bursts=4))
    records: list[Any] = [replace(r, venue="bybit-linear") for r in scenario.records]
    instruments = [r for r in records if isinstance(r, Instrument)]
    topics = ["orders.intents", "orders.events"]
    with peer_in_thread(LoopbackBybitPrivate(Credentials(key, secret), instruments)) as bybit:
        feed(settings, records)
        out = collectors(settings, topics)
        worker = workers(settings, "live", "--models", str(SCENARIO_REGISTRY), "--live", "--live-rest-url",
                         bybit.rest_url, "--live-ws-url", bybit.ws_url,
                         env={"LIQBOT_BYBIT_API_KEY": key, "LIQBOT_BYBIT_API_SECRET": secret})
        out.wait(lambda: out.count("orders.intents") > 0 and out.count("orders.events") >= out.count(
            "orders.intents"), 120, "live order events", worker)
        out.settle(topics, quiet_s=6)
        intents = out.by_topic["orders.intents"]
        assert {i.mode for i in intents.values()} == {"LIVE"}
        assert set(intents) <= set(bybit.orders), "every intent reached Bybit under its client order id"
        creates = [code for method, path, code in bybit.answers if path == "/v5/order/create"]
        assert creates and set(creates) == {0}, bybit.answers  # every signature verified, every order accepted
        accepted = {e.client_order_id for e in out.by_topic["orders.events"].values() if e.status == "ACCEPTED"}
        assert set(intents) <= accepted
        # Bybit reports an acceptance twice, in the REST reply and on the stream: one event id, two receive times
        assert {c.split()[0] for c in out.conflicts} <= {"orders.events"}
        worker.stop()
        text = (worker.home / "worker.log").read_text() + "".join(map(repr, out.by_topic["orders.events"].values()))
    for secret_form in (key, secret, secret.encode().hex(), key.encode().hex()):
        assert secret_form not in text


def test_a_model_that_fails_to_load_stops_the_worker_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    """No usable model: the worker halts at start-up (it must not trade on nothing) and says what to do."""
    models = tmp_path / "models"
    shutil.copytree(ModelRegistry().root, models)
    version = (models / "CURRENT").read_text().strip()
    (models / version / "model.onnx").write_bytes(b"not an onnx model")
    done = worker_that_stops(settings, tmp_path, "--models", str(models))
    assert done.returncode == 2, done.stderr[-2000:]
    assert str(models / version) in done.stderr and "liqbot train" in done.stderr, done.stderr[-2000:]
