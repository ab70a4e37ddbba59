"""`liqbot bench agents`: real market records/s through the features agent of one worker, against a plain loop.

The real Binance USD-M and Bybit captures, pre-produced as Avro into topics of their own, then read four ways in
the same run: (1) one `liqbot agents worker` (all four agents, as deployed), timed by its status.json (rewritten
every 0.05 s): the features agent's records (`applied`) over the time from its first consumed message to its last
record folded in, as the plain loop is timed; (2) the baseline, a plain confluent-kafka consumer loop doing
the agent's feature work through the same compiled batch fold (`liqbot_core.MarketFold`: bodies decoded straight
into `MarketEvent`s, the serde's records for any other payload, the same event-time merge per partition, the
engine); (3) a Faust agent on the same topics that does nothing with the messages; (4) that decode and
`FeatureEngine` alone, in memory, to show where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from liqbot_core import MarketDecoder, MarketEvent, MarketFold

from agents import AGENTS
from agents.steps import FEATURE_INPUTS
from bench import report
from bench.worker import BareAgent
from decision.features import FeatureEngine, MarketRecord
from liqbot.children import WorkerProcess
from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from liqbot.errors import LiqbotError
from schemas.records import AvroRecord
from streams.capture_replay import capture_records
from streams.clients import Clients
from streams.consumer import consumer_config
from streams.merge import EventTimeMerge
from streams.serde import market_decoder

_STATUS_EVERY_S = 0.05  # the worker's status file is the clock of its rate: a run takes a few seconds


def real_records(limit: int | None) -> list[AvroRecord]:
    """Every record the live path makes of the real Binance USD-M capture, then of the Bybit one."""
    records = capture_records(BINANCE_CAPTURE, "binance-usdm") + capture_records(BYBIT_CAPTURE, "bybit-linear")
    return records[:limit] if limit else records


@dataclass(frozen=True)
class Workload:
    """The records' Avro payloads on a fresh topic prefix, and how many the features agent reads."""

    clients: Clients
    payloads: list[tuple[str, bytes, bytes]]  # topic, value, key
    feature_topics: list[str]

    @property
    def feature_payloads(self) -> list[tuple[str, bytes, bytes]]:
        return [p for p in self.payloads if p[0] in self.feature_topics]


def produce(settings: Settings, records: list[AvroRecord]) -> Workload:
    """Encode every record (registering its schema) and produce it to a fresh prefix, before any timing."""
    run = replace(settings, kafka=replace(settings.kafka, topic_prefix=f"bench.agents.{uuid.uuid4().hex[:8]}."))
    clients = Clients.connect(run)
    clients.topics.ensure(clients.admin())
    names = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs if spec.name != "deadletter"}
    payloads = [(names[r.SCHEMA], clients.serde.encode(names[r.SCHEMA], r), r.kafka_key().encode())
                for r in records]
    for topic, value, key in payloads:
        clients.producer.send_raw(topic, value, key)
    clients.producer.drain()
    return Workload(clients, payloads, [clients.topics.name(t) for t in FEATURE_INPUTS])


def _market(record: AvroRecord) -> MarketRecord:
    if not isinstance(record, MarketRecord):
        raise LiqbotError(f"not a market record on a feature topic: {record.SCHEMA}")
    return record


def _market_decoder(work: Workload) -> MarketDecoder:
    topics = work.clients.topics
    return market_decoder(work.clients.serde, {spec.schema: topics.name(spec) for spec in topics.specs
                                               if spec.name in FEATURE_INPUTS})


def _decoder(work: Workload) -> Callable[[str, bytes], MarketRecord | MarketEvent]:
    """The features agent's decode (`AgentCodec.decode_event`): a market body straight into a `MarketEvent`,
    any other payload through the serde."""
    serde, events = work.clients.serde, _market_decoder(work)

    def decode(topic: str, payload: bytes) -> MarketRecord | MarketEvent:
        return events.decode(payload) or _market(serde.decode(topic, payload))
    return decode


def baseline(work: Workload) -> tuple[int, float]:
    """A plain consumer loop doing the features agent's work through the same compiled batch fold
    (`liqbot_core.MarketFold`): (records folded in, seconds from the first consumed)."""
    kafka, serde, topics = work.clients.settings.kafka, work.clients.serde, work.feature_topics
    consumer = Consumer(consumer_config(kafka, f"bench-agents-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False}))
    # end offsets: the records were produced before the run
    high = {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in topics for p in range(kafka.partitions)}
    engines = {p: FeatureEngine() for p in range(kafka.partitions)}
    merges: dict[int, EventTimeMerge[Any]] = {p: EventTimeMerge() for p in engines}
    for merge in merges.values():
        for topic in topics:
            merge.add_source(topic)
    applied: dict[int, dict[str, int]] = {p: {} for p in engines}
    read: dict[tuple[str, int], int] = {}
    fold = MarketFold(_market_decoder(work), set(topics),
                      lambda topic, payload, *_: _market(serde.decode(topic, payload or b"")),
                      lambda topic, partition: high[(topic, partition)])
    consumer.assign([TopicPartition(t, p, 0) for t, p in high])
    expected = sum(high.values())
    folded = consumed = 0
    start = 0.0
    try:
        while folded < expected:
            # never more than are left: consume() would wait out its timeout for a batch that cannot fill
            batch = consumer.consume(num_messages=min(1000, expected - consumed), timeout=1.0)
            start = start or (time.perf_counter() if batch else 0.0)
            consumed += len(batch)
            rest, points, counts = fold.fold(batch, lambda p: (engines[p].compiled, merges[p], applied[p]), read)
            if rest:
                raise LiqbotError(f"the plain loop read {len(rest)} messages it cannot fold: {rest[0].error()}")
            for p, *point in points:  # the vectors, made and dropped: the agent's work before it hands them on
                engines[p].decision_vector(*point)
            folded += sum(fed for _, fed, _ in counts.values())
    finally:
        consumer.close()
    return folded, time.perf_counter() - start


def in_memory(work: Workload) -> tuple[float, float]:
    """Records/s of the agent's decode alone and of `FeatureEngine.update` alone, on the feature topics' records."""
    decode, payloads = _decoder(work), work.feature_payloads
    start = time.perf_counter()
    records = [decode(topic, value) for topic, value, _ in payloads]
    decode_s = time.perf_counter() - start
    ordered = sorted(records, key=lambda r: r.ts_event_ns)
    engine = FeatureEngine()
    start = time.perf_counter()
    for record in ordered:
        engine.update(record)
    return len(payloads) / decode_s, len(payloads) / (time.perf_counter() - start)


@dataclass(frozen=True)
class Samples:
    """A worker's status.json each time it was rewritten (every 0.05 s here), with the file's time."""

    points: list[tuple[float, dict[str, Any]]]

    def rate(self, count: Callable[[dict[str, Any]], int], total: int,
             of: Callable[[dict[str, Any]], int] | None = None) -> float | None:
        """Per second of `of` (default `count`) from the first sample in which the worker had consumed anything
        to the first in which `count` reached `total` (as the plain loop: first consumed to last folded in);
        None when both are the same sample."""
        start = next((p for p in self.points if _consumed(p[1]) > 0), None)
        end = next((p for p in self.points if count(p[1]) >= total), None)
        if start is None or end is None or end[0] <= start[0]:
            return None
        return ((of or count)(end[1]) - (of or count)(start[1])) / (end[0] - start[0])


def watch(worker: WorkerProcess, count: Callable[[dict[str, Any]], int], total: int, timeout_s: float) -> Samples:
    """Sample the worker's status file each time it is rewritten, until `count(status)` reaches `total`."""
    points: list[tuple[float, dict[str, Any]]] = []
    seen_ns, deadline = 0, time.monotonic() + timeout_s
    while not points or count(points[-1][1]) < total:
        if worker.process.poll() is not None or time.monotonic() > deadline:
            got = count(points[-1][1]) if points else 0
            raise LiqbotError(f"the worker's count stopped at {got} of {total}; its log:\n{worker.tail()}")
        time.sleep(0.02)
        try:
            mtime_ns = worker.status_path.stat().st_mtime_ns
            if mtime_ns != seen_ns:
                points.append((mtime_ns / 1e9, json.loads(worker.status_path.read_text())))
                seen_ns = mtime_ns
        except (FileNotFoundError, ValueError):
            continue  # not written yet, or caught between its write and rename
    return Samples(points)


def _features(status: dict[str, Any]) -> int:
    return int(status.get("applied", {}).get("features", 0))


def _consumed(status: dict[str, Any]) -> int:
    return int(status.get("counts", {}).get("consumed", 0))


def worker_rates(work: Workload, home: Path, timeout_s: float, agents: str) -> tuple[float | None, float | None]:
    """Records/s the features agent of a worker running `agents` folded in, and messages/s it consumed meanwhile.

    Each run is its own consumer group (the set of agents names it) on a fresh prefix: it reads from offset 0."""
    total = len(work.feature_payloads)
    options = ("--agents", agents, "--status-every", str(_STATUS_EVERY_S))
    with WorkerProcess(work.clients.settings, home, *options) as worker:
        samples = watch(worker, _features, total, timeout_s)
    return samples.rate(_features, total), samples.rate(_features, total, of=_consumed)


def empty_loop_rate(work: Workload, home: Path, timeout_s: float) -> float:
    """Messages/s of a Faust agent that does nothing, on the features agent's topics, first to last message."""
    with BareAgent(work.clients.settings, work.feature_topics, len(work.feature_payloads), home) as bare:
        result = bare.result(timeout_s)
    return float(result["messages"]) / float(result["seconds"])


@dataclass(frozen=True)
class Rates:
    """Every figure of one run, in records (or messages) per second; None where the run was too short to tell."""

    agent: float | None  # a worker running the features agent only: the same work as the plain loop
    all_agents: float | None  # a worker running all four, as by default
    worker_messages: float | None  # what that worker consumed for all four
    baseline: float
    empty_loop: float
    decode: float
    engine: float


def _measure(work: Workload, timeout_s: float) -> Rates:
    decode_rps, engine_rps = in_memory(work)
    applied, baseline_s = baseline(work)
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as home:
        agent_rps, _ = worker_rates(work, Path(home) / "features", timeout_s, "features")
        all_rps, consumed_rps = worker_rates(work, Path(home) / "all", timeout_s, ",".join(AGENTS))
        empty_rps = empty_loop_rate(work, Path(home) / "bare", timeout_s)
    return Rates(agent_rps, all_rps, consumed_rps, applied / baseline_s, empty_rps, decode_rps, engine_rps)


def _per_s(value: float | None, unit: str = "records/s") -> str:
    return f"{value:,.0f} {unit}" if value is not None else "run too short to tell (one status sample)"


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="liqbot bench agents")
    parser.add_argument("--records", type=int, help="only the first N records of the captures (default: all)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a reader may take")
    args = parser.parse_args(argv)

    records = real_records(args.records)
    print(f"bench agents: {len(records)} real records (Binance USD-M, Bybit captures), "
          f"{settings.kafka.partitions} partitions, on {settings.kafka.bootstrap_servers}")
    load = os.getloadavg()[0]
    work = produce(settings, records)
    r = _measure(work, args.timeout)
    load_after = os.getloadavg()[0]
    ratio = round(r.agent / r.baseline, 3) if r.agent is not None else None
    figures = {
        "agent_records_per_s": _round(r.agent), "baseline_records_per_s": round(r.baseline),
        "agent_over_baseline": ratio, "all_agents_worker_records_per_s": _round(r.all_agents),
        "faust_empty_loop_records_per_s": round(r.empty_loop),
        "worker_messages_per_s": _round(r.worker_messages), "decode_records_per_s": round(r.decode),
        "feature_engine_records_per_s": round(r.engine), "records": len(records),
        "feature_records": len(work.feature_payloads), "load_avg_1m": [round(load, 2), round(load_after, 2)],
        "target_records_per_s": 150_000,  # issue 13
    }
    report("agents", [
        (f"features agent, a worker running it alone ({len(work.feature_payloads)} records)", _per_s(r.agent)),
        ("plain confluent-kafka loop: compiled decode + event-time merge + FeatureEngine", _per_s(r.baseline)),
        ("agent / plain loop", f"{ratio}"),
        ("features agent, a worker running all four agents", _per_s(r.all_agents)),
        ("  that worker's messages (features, decide, execute inputs)", _per_s(r.worker_messages, "messages/s")),
        ("Faust agent doing nothing, same topics", _per_s(r.empty_loop, "messages/s")),
        ("in memory: Avro decode alone (into MarketEvents, as the agent)", _per_s(r.decode)),
        ("in memory: FeatureEngine.update alone (event-time order)", _per_s(r.engine)),
        ("load average (1 min) before / after", f"{load:.2f} / {load_after:.2f}"),
    ], figures)
    return 0


def _round(value: float | None) -> int | None:
    return round(value) if value is not None else None
