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
import bisect
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, Message, Producer, TopicPartition

from bench import percentile_ms, report
from bench.worker import WorkerProcess
from liqbot.config import Settings
from schemas.records import AvroRecord, OrderIntent, Prediction, TopOfBook
from streams.clients import Clients
from streams.consumer import consumer_config
from streams.producer import producer_config
from training.registry import SCENARIO_REGISTRY
from training.scenario import ScenarioRecord, WickScenario, generate

_PER_SYMBOL_PER_S = 25.0  # records a scenario symbol makes per second: 10 book steps x 2, a ticker, ~4 trades
_BOOK_INTERVAL_MS = 100
_WARMUP_S = 10


def scenario(rate: float, seconds: int, burst_every_s: float, seed: int) -> WickScenario:
    """A SYNTHETIC market of about `rate` records/s: as many symbols as that takes, a burst every `burst_every_s`."""
    symbols = max(1, round(rate / _PER_SYMBOL_PER_S))
    bursts = max(1, int((seconds - _WARMUP_S - 1) / burst_every_s))
    return WickScenario(seed=seed, symbols=tuple(f"WICK{i:02d}USDT" for i in range(symbols)), duration_s=seconds,
                        bursts=bursts, book_interval_ms=_BOOK_INTERVAL_MS, warmup_s=_WARMUP_S, settle_s=1)


@dataclass(frozen=True)
class Seen:
    """A prediction or intent as the bench's consumer saw it."""

    record: Prediction | OrderIntent
    created_ns: int  # Kafka CreateTime: when the worker's producer was handed the record (ms resolution)
    received_ns: int  # when the bench's consumer got it

    @property
    def latency_ns(self) -> int:
        return self.created_ns - self.record.ts_recv_ns


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
    """Decodes every prediction and intent the worker produced."""

    def __init__(self, clients: Clients) -> None:
        super().__init__(clients.settings, [clients.topics.name("predictions"), clients.topics.name("orders.intents")])
        self.serde = clients.serde
        self.seen: list[Seen] = []

    def on_message(self, msg: Message, received_ns: int) -> None:
        kind, created_ms = msg.timestamp()
        if kind != TIMESTAMP_CREATE_TIME:
            raise RuntimeError(f"{msg.topic()}: no CreateTime on the worker's output (timestamp type {kind})")
        record = self.serde.decode(msg.topic() or "", msg.value() or b"")
        if isinstance(record, Prediction | OrderIntent):
            self.seen.append(Seen(record, created_ms * 1_000_000, received_ns))

    def of(self, kind: type[Prediction] | type[OrderIntent]) -> list[Seen]:
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


@dataclass
class Paced:
    """What the pacer produced: counts, wall seconds, and each symbol's tops (event time, stamp) for the joins."""

    records: int = 0
    seconds: float = 0.0
    tops: dict[str, tuple[list[int], list[int]]] = field(default_factory=lambda: defaultdict(lambda: ([], [])))

    def first_top_after(self, symbol: str, ts_event_ns: int) -> int | None:
        """When the first top of book later in event time than `ts_event_ns` was produced (wall ns)."""
        times, stamps = self.tops[symbol]
        i = bisect.bisect_right(times, ts_event_ns)
        return stamps[i] if i < len(stamps) else None


def pace(clients: Clients, records: tuple[ScenarioRecord, ...]) -> Paced:
    """Produce every record at its event-time offset from the first, `ts_recv_ns` stamped with the wall clock."""
    names = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs if spec.name != "deadletter"}
    producer, out = clients.producer, Paced()
    first_ns, start = records[0].ts_event_ns, time.perf_counter()
    for record in records:
        ahead_s = start + (record.ts_event_ns - first_ns) / 1e9 - time.perf_counter()
        if ahead_s > 0:
            time.sleep(ahead_s)  # the schedule absorbs sleep overshoot: event time and wall time stay aligned
        stamped: AvroRecord = replace(record, ts_recv_ns=time.time_ns())
        producer.send(names[record.SCHEMA], stamped, record.kafka_key())
        if isinstance(stamped, TopOfBook):
            times, stamps = out.tops[stamped.symbol]
            times.append(stamped.ts_event_ns)
            stamps.append(stamped.ts_recv_ns)
    out.seconds, out.records = time.perf_counter() - start, len(records)
    producer.drain()
    return out


def round_trip(settings: Settings, topic: str, payload: bytes, rate: float, seconds: float) -> list[int]:
    """Produce -> consume latency (ns) of raw messages at `rate`/s, the agents' producer settings, after 1 s warm-up."""
    reader = RoundTrip(settings, topic)
    reader.start()
    producer = Producer(producer_config(settings.kafka))
    start = time.perf_counter()
    for i in range(int((seconds + 1) * rate)):
        ahead_s = start + i / rate - time.perf_counter()
        if ahead_s > 0:
            time.sleep(ahead_s)
        headers = [("sent_ns", str(time.time_ns()).encode())] if i >= rate else None
        producer.produce(topic, payload, b"bench", headers=headers)
        producer.poll(0)
    producer.flush(30)
    deadline = time.monotonic() + 10
    while len(reader.latencies_ns) < int(seconds * rate) and time.monotonic() < deadline:
        time.sleep(0.05)
    reader.stop()
    return sorted(reader.latencies_ns)


def settle(collector: Collector, worker: WorkerProcess, timeout_s: float = 60.0) -> None:
    """Until the consumer has every intent and prediction the worker says it sent, and the worker is idle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(2.5)  # the worker writes its status every second
        counts = worker.status()["counts"]
        sent = (counts.get("sent:liqbot.Prediction", 0), counts.get("sent:liqbot.OrderIntent", 0))
        if sent == (len(collector.of(Prediction)), len(collector.of(OrderIntent))):
            return
    print("  warning: the worker's counts and the collected outputs still differ")


def _ms(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50": float("nan"), "p99": float("nan"), "p999": float("nan"), "max": float("nan")}
    return {q: round(percentile_ms(ordered, p), 3) for q, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))} | {
        "max": round(ordered[-1] / 1e6, 3)}


def decomposition(intents: list[Seen], predictions: list[Seen], paced: Paced) -> dict[str, list[int]]:
    """Per intent: the wait for the first later top of book (decide joins the book as of the trigger's event time)
    and the time from the later of that top and the prediction to the intent."""
    created = {s.record.event_id: s.created_ns for s in predictions}
    out: dict[str, list[int]] = {"book_wait": [], "after_ready": []}
    for seen in intents:
        intent = seen.record
        assert isinstance(intent, OrderIntent)
        top_ns = paced.first_top_after(intent.symbol, intent.ts_event_ns)
        prediction_ns = created.get(intent.prediction_id)
        if top_ns is None or prediction_ns is None:
            continue
        out["book_wait"].append(top_ns - intent.ts_recv_ns)
        out["after_ready"].append(seen.created_ns - max(top_ns, prediction_ns))
    return out


def _run(clients: Clients, config: WickScenario, home: Path) -> tuple[Collector, Paced, dict[str, Any]]:
    """Start the worker on the scenario model, wait for its partitions, pace the scenario, collect the outputs."""
    records = generate(config).records
    collector = Collector(clients)
    collector.start()
    with WorkerProcess(clients.settings, home, models=SCENARIO_REGISTRY) as worker:
        worker.wait_for_partitions(clients.settings.kafka.partitions)
        paced = pace(clients, records)
        settle(collector, worker)
        status = worker.status()
    collector.stop()
    return collector, paced, status


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
    for spec in clients.topics.specs:  # registered before timing: a session's set-up, not a cost per record
        clients.serde.header(clients.topics.name(spec), spec.schema)
    config = scenario(args.rate, args.seconds, args.burst_every, args.seed)
    print(f"bench e2e: SYNTHETIC scenario (seed {config.seed}), {len(config.symbols)} symbols, {config.bursts} "
          f"bursts in {args.seconds} s, on {run.kafka.bootstrap_servers}, {run.kafka.partitions} partitions")
    raw = round_trip(run, clients.topics.name("deadletter"), b"x" * 200, args.rate, args.baseline_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as home:
        collector, paced, status = _run(clients, config, Path(home))
    _report(args, collector, paced, status, raw)
    return 0


def _report(args: argparse.Namespace, collector: Collector, paced: Paced, status: dict[str, Any],
            raw: list[int]) -> None:
    intents, predictions = collector.of(OrderIntent), collector.of(Prediction)
    e2e, pred = _ms([s.latency_ns for s in intents]), _ms([s.latency_ns for s in predictions])
    received = _ms([s.received_ns - s.record.ts_recv_ns for s in intents])
    parts = {k: _ms(v) for k, v in decomposition(intents, predictions, paced).items()}
    base = _ms(raw)
    rate = paced.records / paced.seconds
    figures = {
        "p50_ms": e2e["p50"], "p99_ms": e2e["p99"], "p999_ms": e2e["p999"], "rate_per_s": round(rate, 1),
        "intents": len(intents), "max_ms": e2e["max"],
        "prediction_p50_ms": pred["p50"], "prediction_p99_ms": pred["p99"], "prediction_p999_ms": pred["p999"],
        "predictions": len(predictions),
        "received_p50_ms": received["p50"], "received_p99_ms": received["p99"],
        "book_wait_p50_ms": parts["book_wait"]["p50"], "book_wait_p99_ms": parts["book_wait"]["p99"],
        "after_ready_p50_ms": parts["after_ready"]["p50"], "after_ready_p99_ms": parts["after_ready"]["p99"],
        "raw_round_trip_p50_ms": base["p50"], "raw_round_trip_p99_ms": base["p99"], "raw_samples": len(raw),
        "p99_over_raw_p99": round(e2e["p99"] / base["p99"], 2) if raw else None,
        "records": paced.records, "seconds": round(paced.seconds, 1), "worker_counts": status.get("counts", {}),
        "synthetic": True, "target_p99_ms": 5.0,
    }
    n, m = len(intents), len(predictions)
    report("e2e", [
        (f"SYNTHETIC scenario paced in event time: {paced.records} records in {paced.seconds:.0f} s", f"{rate:,.0f}/s"),
        (f"liquidation -> intent in Kafka (CreateTime), p50 / p99 ({n} intents)", f"{e2e['p50']} / {e2e['p99']} ms"),
        ("  p999 (= the max below 1,000 samples) / max", f"{e2e['p999']} / {e2e['max']} ms"),
        ("  same, intent received by the bench's consumer, p50 / p99", f"{received['p50']} / {received['p99']} ms"),
        ("  of which: wait for the next top of book (decide's as-of join), p50 / p99",
         f"{parts['book_wait']['p50']} / {parts['book_wait']['p99']} ms"),
        ("  of which: later of that top and the prediction -> intent, p50 / p99",
         f"{parts['after_ready']['p50']} / {parts['after_ready']['p99']} ms"),
        (f"liquidation -> prediction in Kafka, p50 / p99 / p999 ({m} predictions)",
         f"{pred['p50']} / {pred['p99']} / {pred['p999']} ms"),
        (f"raw produce -> consume, same broker, p50 / p99 ({len(raw)} messages at {args.rate:,.0f}/s)",
         f"{base['p50']} / {base['p99']} ms"),
        ("intent p99 / raw round-trip p99", f"{figures['p99_over_raw_p99']}"),
    ], figures)
