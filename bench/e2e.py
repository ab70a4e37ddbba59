"""`liqbot bench e2e`: a market record produced -> its order intent in Kafka, through a real agents worker.

The market is SYNTHETIC (training/scenario.py: liquidation bursts and wicks on many symbols), because no real
capture holds a liquidation burst, and the model is the one fitted on it (training/scenario_models), because the
real model predicts no edge and so never places an order. Records are produced at their event-time spacing, so
wall time runs at event time (about 1,000 records/s on average, denser inside bursts), each stamped with the
wall-clock ns at which it is produced as its `ts_recv_ns`; predictions and intents carry their trigger
liquidation's `ts_recv_ns`, so each output's Kafka CreateTime (set by the worker's librdkafka producer when the
agent sends it, whole ms) minus that stamp is its latency.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from bench import percentile_ms, report
from bench.worker import BareAgent
from liqbot.children import WorkerProcess
from liqbot.config import Settings
from schemas.records import AvroRecord, FeatureVector, Liquidation, OrderIntent, Prediction
from streams.clients import Clients
from streams.consumer import consumer_config
from streams.producer import Headers, producer_config
from training.registry import SCENARIO_REGISTRY
from training.scenario import ScenarioRecord, WickScenario, generate

_PER_SYMBOL_PER_S = 25.0  # records a scenario symbol makes per second: 10 book steps x 2, a ticker, ~4 trades
_BOOK_INTERVAL_MS = 100
_WARMUP_S = 10
_TARGET_P99_MS = 5.0
_TARGET_OVER_ARRIVAL = 1.3  # issue 13: intent p99 at most 1.3x the plain arrival p99 of its triggers, same run


def scenario(rate: float, seconds: int, burst_every_s: float, seed: int) -> WickScenario:
    """A SYNTHETIC market of about `rate` records/s: as many symbols as that takes, a burst every `burst_every_s`."""
    symbols = max(1, round(rate / _PER_SYMBOL_PER_S))
    bursts = max(1, int((seconds - _WARMUP_S - 1) / burst_every_s))
    return WickScenario(seed=seed, symbols=tuple(f"WICK{i:02d}USDT" for i in range(symbols)), duration_s=seconds,
                        bursts=bursts, book_interval_ms=_BOOK_INTERVAL_MS, warmup_s=_WARMUP_S, settle_s=1)


Output = FeatureVector | Prediction | OrderIntent


@dataclass(frozen=True)
class Seen:
    """A feature vector, prediction or intent, or a paced liquidation, as the bench's consumer saw it."""

    record: Output | Liquidation
    created_ns: int  # Kafka CreateTime: when a producer (the worker's; the pacer's) was handed it (ms resolution)
    received_ns: int  # when the bench's consumer got it

    @property
    def latency_ns(self) -> int:
        return self.created_ns - self.record.ts_recv_ns

    @property
    def received_latency_ns(self) -> int:
        """From the paced trigger's stamp to this consumer, whole ns (CreateTime has ms only)."""
        return self.received_ns - self.record.ts_recv_ns


class Reader(threading.Thread):
    """A plain confluent-kafka consumer in a thread, from offset 0 of every partition of `topics`."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(consumer_config(settings.kafka, f"bench-e2e-{uuid.uuid4().hex[:8]}",
                                                 **{"enable.auto.commit": False, "fetch.wait.max.ms": 5}))
        self.consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(settings.kafka.partitions)])
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                # poll, not consume(n): consume waits for a full batch or its timeout, which adds to the latency
                msg = self.consumer.poll(0.1)
                if msg is not None and msg.error() is None:
                    self.on_message(msg, time.time_ns())
        finally:
            self.consumer.close()

    def on_message(self, msg: Message, received_ns: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class Collector(Reader):
    """Decodes every feature vector, prediction and intent the worker produced, and the liquidations it read: their
    arrival here is the broker path's own latency for the very records that trigger the worker, in the same run."""

    def __init__(self, clients: Clients) -> None:
        topics = [clients.topics.name(t) for t in ("features", "predictions", "orders.intents", "market.liquidations")]
        super().__init__(clients.settings, topics)
        self.serde = clients.serde
        self.seen: list[Seen] = []

    def on_message(self, msg: Message, received_ns: int) -> None:
        kind, created_ms = msg.timestamp()
        if kind != TIMESTAMP_CREATE_TIME:
            raise RuntimeError(f"{msg.topic()}: no CreateTime on the record (timestamp type {kind})")
        record = self.serde.decode(msg.topic() or "", msg.value() or b"")
        if isinstance(record, Output | Liquidation):
            self.seen.append(Seen(record, created_ms * 1_000_000, received_ns))

    def of(self, kind: type[Output | Liquidation]) -> list[Seen]:
        return [s for s in list(self.seen) if isinstance(s.record, kind)]


class RoundTrip(Reader):
    """Raw bytes produced -> consumed through the same broker, the baseline: latency from a `sent_ns` header."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(settings, [topic])
        self.latencies_ns: list[int] = []

    def on_message(self, msg: Message, received_ns: int) -> None:
        sent = dict(msg.headers() or ()).get("sent_ns")
        if isinstance(sent, bytes):
            self.latencies_ns.append(received_ns - int(sent))


class Relay(Reader):
    """Forwards each message to the next topic as it arrives, with the agents' producer settings: a hop that
    does no work, for the floor of a chain of hops."""

    def __init__(self, settings: Settings, source: str, target: str) -> None:
        super().__init__(settings, [source])
        self.producer = Producer(producer_config(settings.kafka, **{"linger.ms": 0}))
        self.target = target

    def on_message(self, msg: Message, received_ns: int) -> None:
        self.producer.produce(self.target, msg.value(), msg.key(), headers=msg.headers())
        self.producer.poll(0)

    def stop(self) -> None:
        super().stop()
        self.producer.flush(10)


@dataclass
class Paced:
    """What the pacer produced."""

    records: int = 0
    liquidations: int = 0
    start_ns: int = 0  # wall clock when the first record was produced
    seconds: float = 0.0


def pace(clients: Clients, records: tuple[ScenarioRecord, ...]) -> Paced:
    """Produce every record at its event-time offset from the first, `ts_recv_ns` stamped with the wall clock."""
    names = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs if spec.name != "deadletter"}
    producer, out = clients.producer, Paced()
    first_ns, start, out.start_ns = records[0].ts_event_ns, time.perf_counter(), time.time_ns()
    for record in records:
        ahead_s = start + (record.ts_event_ns - first_ns) / 1e9 - time.perf_counter()
        if ahead_s > 0:
            time.sleep(ahead_s)  # the schedule absorbs sleep overshoot: event time and wall time stay aligned
        stamped: AvroRecord = replace(record, ts_recv_ns=time.time_ns())
        producer.send(names[record.SCHEMA], stamped, record.kafka_key())
    out.seconds, out.records = time.perf_counter() - start, len(records)
    out.liquidations = sum(isinstance(r, Liquidation) for r in records)
    producer.drain()
    return out


def paced_raw(settings: Settings, topic: str, rate: float, seconds: float, warmup_s: float) -> int:
    """200-byte messages at `rate`/s for `warmup_s` + `seconds` with ingest's producer settings (the market
    records' first hop); those after the warm-up carry a `sent_ns` header: returns how many do."""
    producer = Producer(producer_config(settings.kafka))
    start, warmup = time.perf_counter(), int(warmup_s * rate)
    for i in range(warmup + int(seconds * rate)):
        ahead_s = start + i / rate - time.perf_counter()
        if ahead_s > 0:
            time.sleep(ahead_s)
        headers: Headers | None = [("sent_ns", str(time.time_ns()).encode())] if i >= warmup else None
        producer.produce(topic, b"x" * 200, str(i % 40).encode(), headers=headers)
        producer.poll(0)
    producer.flush(30)
    return int(seconds * rate)


def plain_round_trip(settings: Settings, topics: list[str], rate: float, seconds: float) -> list[int]:
    """Produce -> consume latency (ns) through the broker with plain confluent-kafka consumers: produced to the
    first topic, relayed from each to the next, read from the last (one hop per topic after the first)."""
    relays = [Relay(settings, source, target) for source, target in itertools.pairwise(topics)]
    reader = RoundTrip(settings, topics[-1])
    for thread in (*relays, reader):
        thread.start()
    # the first second after the topics are created runs 10-300 ms slower through relays (metadata, first fetches)
    timed = paced_raw(settings, topics[0], rate, seconds, warmup_s=3.0)
    deadline = time.monotonic() + 10
    while len(reader.latencies_ns) < timed and time.monotonic() < deadline:
        time.sleep(0.05)
    for thread in (*relays, reader):
        thread.stop()
    return sorted(reader.latencies_ns)


def faust_round_trip(settings: Settings, topic: str, rate: float, seconds: float, home: Path) -> list[int]:
    """The same, received by a Faust agent that does nothing else (Faust's floor for one hop of the pipeline).

    Its warm-up is longer: the first fetches after the assignment took up to ~1.6 s (aiokafka's fetch wait is 1.5 s).
    """
    warmup_s = 5.0
    with BareAgent(settings, [topic], int((seconds + warmup_s) * rate), home) as bare:
        bare.wait_ready()
        paced_raw(settings, topic, rate, seconds, warmup_s)
        return sorted(bare.result(30)["latencies_ns"])


def raw_topics(clients: Clients) -> dict[str, list[str]]:
    """Topics of the run's prefix for the baselines, which no agent reads: one hop, three hops, Faust."""
    names = {kind: [f"{clients.settings.kafka.topic_prefix}bench.raw.{kind}.{n}" for n in range(count)]
             for kind, count in (("plain", 1), ("chain", 4), ("faust", 1))}
    admin, partitions = clients.admin(), clients.settings.kafka.partitions  # the admin must outlive its futures
    topics = [NewTopic(n, partitions, 1) for group in names.values() for n in group]
    for future in admin.create_topics(topics).values():
        future.result()
    return names


def settle(collector: Collector, worker: WorkerProcess, liquidations: int, timeout_s: float = 60.0) -> None:
    """Until the consumer has every paced liquidation and every output the worker says it sent (its status is
    written every second)."""
    deadline = time.monotonic() + timeout_s
    kinds = {FeatureVector: "liqbot.FeatureVector", Prediction: "liqbot.Prediction", OrderIntent: "liqbot.OrderIntent"}
    while time.monotonic() < deadline:
        time.sleep(2.5)
        counts = worker.status()["counts"]
        if all(counts.get(f"sent:{name}", 0) == len(collector.of(kind)) for kind, name in kinds.items()) and (
                len(collector.of(Liquidation)) == liquidations):
            return
    print("  warning: the worker's counts and the collected outputs (or the paced liquidations) still differ")


def hops(collector: Collector) -> dict[str, list[int]]:
    """Each agent's share (ns): liquidation -> vector (features: the one trip through the broker, the merge wait
    and the fold), vector -> prediction (predict), prediction -> intent (decide); chained in one worker
    (agents/chain.py), the last two are in-process steps, 0-1 ms at CreateTime's resolution."""
    seen = list(collector.seen)
    vectors = {s.record.event_id: s.created_ns for s in seen if isinstance(s.record, FeatureVector)}
    predictions = {s.record.event_id: s.created_ns for s in seen if isinstance(s.record, Prediction)}
    return {
        "features": [s.latency_ns for s in seen if isinstance(s.record, FeatureVector)],
        "predict": [s.created_ns - vectors[s.record.event_id] for s in seen
                    if isinstance(s.record, Prediction) and s.record.event_id in vectors],
        "decide": [s.created_ns - predictions[s.record.prediction_id] for s in seen
                   if isinstance(s.record, OrderIntent) and s.record.prediction_id in predictions],
    }


def by_minute(seen: list[Seen], start_ns: int, q: float) -> list[float]:
    """The `q` percentile (ms) of the latencies of each minute of the run, by the trigger's time: drift shows."""
    minutes: dict[int, list[int]] = defaultdict(list)
    for s in seen:
        minutes[(s.record.ts_recv_ns - start_ns) // 60_000_000_000].append(s.latency_ns)
    return [round(percentile_ms(sorted(minutes[m]), q), 1) for m in sorted(minutes)]


def _ms(samples: list[int]) -> dict[str, float]:
    """p50, p99, p999 (nearest rank: the max below 1,000 samples) and max, in ms."""
    ordered = sorted(samples)
    if not ordered:
        return dict.fromkeys(("p50", "p99", "p999", "max"), float("nan"))
    return {q: round(percentile_ms(ordered, p), 3) for q, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))} | {
        "max": round(ordered[-1] / 1e6, 3)}


@dataclass
class Run:
    collector: Collector
    paced: Paced
    status: dict[str, Any]
    worker_cpu: float  # share of one core the worker used while the scenario was paced


def _run(clients: Clients, config: WickScenario, home: Path) -> Run:
    """Start the worker on the scenario model, wait for its partitions, pace the scenario, collect the outputs."""
    records = generate(config).records
    # the pacer's process holds the whole scenario: a full collection of it pauses the pacer for ~0.4 s between a
    # record's stamp and its send; frozen, the records are out of every collection
    gc.collect()
    gc.freeze()
    collector = Collector(clients)
    collector.start()
    with WorkerProcess(clients.settings, home, models=SCENARIO_REGISTRY) as worker:
        worker.wait_for_partitions(clients.settings.kafka.partitions)
        cpu = worker.cpu_seconds()
        paced = pace(clients, records)
        cpu = (worker.cpu_seconds() - cpu) / paced.seconds
        settle(collector, worker, paced.liquidations)
        status = worker.status()
    collector.stop()
    return Run(collector, paced, status, cpu)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="liqbot bench e2e")
    parser.add_argument("--rate", type=float, default=1000.0, help="records/s of the scenario (sets its symbols)")
    parser.add_argument("--seconds", type=int, default=300, help="length of the scenario (event time = wall time)")
    parser.add_argument("--burst-every", type=float, default=2.0, help="seconds between bursts, over all symbols")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="length of the raw round-trip run")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    run = replace(settings, kafka=replace(settings.kafka, topic_prefix=f"bench.e2e.{uuid.uuid4().hex[:8]}."))
    clients = Clients.connect(run)
    clients.topics.ensure(clients.admin())
    clients.register_schemas()  # before timing: a session's set-up, not a cost per record
    config = scenario(args.rate, args.seconds, args.burst_every, args.seed)
    print(f"bench e2e: SYNTHETIC scenario (seed {config.seed}), {len(config.symbols)} symbols, {config.bursts} "
          f"bursts in {args.seconds} s, on {run.kafka.bootstrap_servers}, {run.kafka.partitions} partitions")
    load = os.getloadavg()[0]
    topics = raw_topics(clients)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as home:
        raw = plain_round_trip(run, topics["plain"], args.rate, args.baseline_seconds)
        chain = plain_round_trip(run, topics["chain"], args.rate, args.baseline_seconds)
        faust = faust_round_trip(run, topics["faust"][0], args.rate, args.baseline_seconds, Path(home) / "bare")
        result = _run(clients, config, Path(home) / "worker")
    _report(args, result, {"raw": raw, "chain": chain, "faust": faust}, (load, os.getloadavg()[0]))
    return 0


def slow_intents(intents: list[Seen], liquidations: list[Seen], over_ms: float) -> list[tuple[float, float]]:
    """(intent ms, its trigger's arrival at the bench's plain consumer ms) of each intent slower than `over_ms`:
    a trigger that also reached a plain consumer late was held up on the broker path, not in the worker."""
    arrivals = {s.record.ts_recv_ns: s.received_latency_ns for s in liquidations}
    return sorted(((round(s.latency_ns / 1e6, 2), round(arrivals[s.record.ts_recv_ns] / 1e6, 2)) for s in intents
                   if s.latency_ns > over_ms * 1e6 and s.record.ts_recv_ns in arrivals), reverse=True)


def _report(args: argparse.Namespace, run: Run, baselines: dict[str, list[int]], load: tuple[float, float]) -> None:
    intents, predictions = run.collector.of(OrderIntent), run.collector.of(Prediction)
    liquidations = run.collector.of(Liquidation)
    stats = {"e2e": _ms([s.latency_ns for s in intents]), "prediction": _ms([s.latency_ns for s in predictions]),
             "received": _ms([s.received_latency_ns for s in intents]),
             "arrival": _ms([s.received_latency_ns for s in liquidations]),
             "raw": _ms(baselines["raw"]), "chain": _ms(baselines["chain"]), "faust": _ms(baselines["faust"]),
             **{k: _ms(v) for k, v in hops(run.collector).items()}}
    e2e, pred, raw = stats["e2e"], stats["prediction"], stats["raw"]
    rate = run.paced.records / run.paced.seconds
    ratio = round(e2e["p99"] / raw["p99"], 2) if intents and baselines["raw"] else None
    figures = {
        "p50_ms": e2e["p50"], "p99_ms": e2e["p99"], "p999_ms": e2e["p999"], "rate_per_s": round(rate, 1),
        "intents": len(intents), "max_ms": e2e["max"],
        "prediction_p50_ms": pred["p50"], "prediction_p99_ms": pred["p99"], "prediction_p999_ms": pred["p999"],
        "predictions": len(predictions), "liquidations": run.paced.liquidations,
        "prediction_p50_ms_by_minute": by_minute(predictions, run.paced.start_ns, 0.5),
        "prediction_p99_ms_by_minute": by_minute(predictions, run.paced.start_ns, 0.99),
        **{f"{name}_{q}_ms": stats[name][q] for name in ("received", "decide", "features", "predict")
           for q in ("p50", "p99")},
        "arrival_p50_ms": stats["arrival"]["p50"], "arrival_p99_ms": stats["arrival"]["p99"],
        "arrival_max_ms": stats["arrival"]["max"], "arrivals": len(liquidations),
        "p99_over_arrival_p99": round(e2e["p99"] / stats["arrival"]["p99"], 2) if intents and liquidations else None,
        "target_p99_over_arrival_p99": _TARGET_OVER_ARRIVAL,
        "slow_intents_ms": slow_intents(intents, liquidations, _TARGET_P99_MS),
        "raw_round_trip_p50_ms": raw["p50"], "raw_round_trip_p99_ms": raw["p99"], "raw_samples": len(baselines["raw"]),
        "raw_three_hops_p50_ms": stats["chain"]["p50"], "raw_three_hops_p99_ms": stats["chain"]["p99"],
        "raw_three_hops_samples": len(baselines["chain"]),
        "faust_round_trip_p50_ms": stats["faust"]["p50"], "faust_round_trip_p99_ms": stats["faust"]["p99"],
        "faust_samples": len(baselines["faust"]), "p99_over_raw_p99": ratio,
        "p99_over_three_hops_p99": round(e2e["p99"] / stats["chain"]["p99"], 2) if intents and baselines["chain"]
        else None,
        "records": run.paced.records, "seconds": round(run.paced.seconds, 1),
        "worker_cpu_share": round(run.worker_cpu, 2), "load_avg_1m": [round(x, 2) for x in load],
        "worker_counts": run.status.get("counts", {}), "worker_snapshots": run.status.get("snapshots", {}),
        "worker_gc": run.status.get("gc", {}),
        "synthetic": True, "target_p99_ms": _TARGET_P99_MS,
    }
    report("e2e", _rows(args, run, stats, figures), figures)


def _rows(args: argparse.Namespace, run: Run, stats: dict[str, dict[str, float]],
          figures: dict[str, Any]) -> list[tuple[str, str]]:
    def both(name: str) -> str:
        return f"{stats[name]['p50']} / {stats[name]['p99']} ms"

    e2e, pred = stats["e2e"], stats["prediction"]
    return [
        (f"SYNTHETIC scenario paced in event time: {run.paced.records} records in {run.paced.seconds:.0f} s",
         f"{figures['rate_per_s']:,.0f}/s"),
        (f"liquidation -> intent in Kafka (CreateTime, whole ms), p50 / p99 ({figures['intents']} intents)",
         both("e2e")),
        ("  p999 (nearest rank: the max below 1,000 samples) / max", f"{e2e['p999']} / {e2e['max']} ms"),
        ("  the intent received by the bench's consumer instead, p50 / p99", both("received")),
        ("  decide: prediction -> intent, p50 / p99", both("decide")),
        (f"liquidation -> prediction in Kafka, p50 / p99 / p999 ({figures['predictions']} predictions, "
         f"{figures['liquidations']} liquidations)", f"{pred['p50']} / {pred['p99']} / {pred['p999']} ms"),
        ("  features: liquidation -> vector, p50 / p99", both("features")),
        ("  predict: vector -> prediction, p50 / p99", both("predict")),
        ("  p50 by minute of the run", " ".join(f"{x:g}" for x in figures["prediction_p50_ms_by_minute"])),
        ("  p99 by minute of the run", " ".join(f"{x:g}" for x in figures["prediction_p99_ms_by_minute"])),
        ("the same liquidations received by the bench's plain consumer, p50 / p99 / max",
         f"{stats['arrival']['p50']} / {stats['arrival']['p99']} / {stats['arrival']['max']} ms"),
        (f"intents over {_TARGET_P99_MS:g} ms: (intent, its trigger's arrival at the plain consumer) ms",
         ", ".join(f"({a:g}, {b:g})" for a, b in figures["slow_intents_ms"]) or "none"),
        (f"raw produce -> consume, same broker, p50 / p99 ({figures['raw_samples']} at {args.rate:,.0f}/s)",
         both("raw")),
        ("  the same through three plain hops (two relays, no work: the hops of agents run apart), p50 / p99",
         both("chain")),
        ("  the same received by a Faust agent doing nothing else, p50 / p99", both("faust")),
        (f"intent p99 / its triggers' plain arrival p99 (target <= {_TARGET_OVER_ARRIVAL:g})",
         f"{figures['p99_over_arrival_p99']}"),
        ("intent p99 / raw round-trip p99; / three plain hops' p99",
         f"{figures['p99_over_raw_p99']}; {figures['p99_over_three_hops_p99']}"),
        ("worker CPU while paced (share of one core)", f"{run.worker_cpu:.2f}"),
        ("load average (1 min) before / after", " / ".join(f"{x:.2f}" for x in figures["load_avg_1m"])),
    ]
