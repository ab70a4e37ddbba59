"""`liqbot bench sink`: the real captures' records from Kafka into ClickHouse (chDB), against raw Arrow inserts.

Throughput: every record the live path makes of the real Binance USD-M and Bybit captures, Avro-encoded once with
the project's serde (Confluent framing, registry ids) and produced to a fresh topic prefix, repeated (each copy a
new offset) to `--records`, all before any timing. Then, in the same run and the same chDB store:
(1) the baseline: the same messages read into memory and turned into the sink's very Arrow tables (`build`, in the
sink's batch sizes: `batch_rows` messages as polled, one table per topic), then only clickhouse-connect's
`insert_arrow` of them timed, into a fresh copy of the tables (a database of its own);
(2) `TableSink.run` in a thread of this process on a fresh consumer group, timed from the call (subscribe, group
join, assignment) until the group's committed offsets reach every partition's end (polled from here every 10 ms).

Freshness: a `liqbot sink` child process (its own chDB, the deployed command) on another fresh prefix; the same
records produced at `--rate` for `--freshness-s` by the live producers' settings; every `--sample-every`-th one's
(topic, partition, offset) from its delivery report, then polled through the sink's SQL endpoint until a query
returns its row. Freshness = the reply's arrival minus the record's send time (and minus its delivery ack).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicCollection, TopicPartition

from bench import percentile_ms, report
from liqbot.children import SinkProcess
from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from liqbot.errors import LiqbotError
from schemas.records import AvroRecord
from streams.capture_replay import capture_records
from streams.clients import Clients
from streams.history.batch import TableBatch, build
from streams.history.query import endpoint_file, run_query
from streams.history.sink import SinkConfig, TableSink
from streams.history.store import StoreSettings, apply_migrations, connect
from streams.producer import producer_config

__all__ = ["main"]

_TARGET_RECORDS_PER_S = 200_000
_TARGET_OVER_BASELINE = 0.5
_TARGET_FRESHNESS_P99_MS = 1000.0
_BASELINE_DB = "bench_baseline"
_POLL_S = 0.02  # freshness: how often the outstanding samples are queried

Payload = tuple[str, bytes, bytes]  # topic, value, key


@dataclass(frozen=True)
class Workload:
    """The records' payloads on one fresh prefix, and that prefix's clients."""

    clients: Clients
    payloads: list[Payload]

    @property
    def tables(self) -> dict[str, str]:
        """Topic name to its ClickHouse table."""
        return {self.clients.topics.name(s): s.table for s in self.clients.topics.specs}


def real_records() -> list[AvroRecord]:
    return capture_records(BINANCE_CAPTURE, "binance-usdm") + capture_records(BYBIT_CAPTURE, "bybit-linear")


def workload(settings: Settings, records: list[AvroRecord], name: str) -> Workload:
    """Fresh topics under `<prefix>bench.sink.<name>.<id>.`, and each record encoded for its topic."""
    prefix = f"{settings.kafka.topic_prefix}bench.sink.{name}.{uuid.uuid4().hex[:8]}."
    clients = Clients.connect(replace(settings, kafka=replace(settings.kafka, topic_prefix=prefix)))
    clients.topics.ensure(clients.admin())
    clients.register_schemas()
    names = {spec.schema: clients.topics.name(spec) for spec in clients.topics.specs if spec.name != "deadletter"}
    serde = clients.serde
    return Workload(clients, [(names[r.SCHEMA], serde.encode(names[r.SCHEMA], r), r.kafka_key().encode())
                              for r in records])


def reframed(work: Workload, settings: Settings, name: str) -> Workload:
    """The same bodies on another fresh prefix: only the framing header (the subject's schema id) differs."""
    fresh = workload(settings, [], name)
    specs = {work.clients.topics.name(s): s for s in work.clients.topics.specs}
    frames: dict[str, tuple[str, int, bytes]] = {}  # old topic: new topic, old header's length, new header
    for topic in {p[0] for p in work.payloads}:
        spec, new = specs[topic], fresh.clients.topics.name(specs[topic])
        frames[topic] = (new, len(work.clients.serde.header(topic, spec.schema)),
                         fresh.clients.serde.header(new, spec.schema))
    return Workload(fresh.clients, [(frames[t][0], frames[t][2] + v[frames[t][1]:], k) for t, v, k in work.payloads])


def produce(work: Workload, count: int) -> dict[tuple[str, int], int]:
    """`count` messages, cycling through the payloads (each copy a new offset); returns each partition's end."""
    producer = work.clients.producer
    payloads = work.payloads
    for i in range(count):
        producer.send_raw(*payloads[i % len(payloads)])
    producer.drain()
    consumer = _consumer(work, f"bench-sink-ends-{uuid.uuid4().hex[:8]}")
    try:
        ends = {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t in work.tables for p in range(work.clients.settings.kafka.partitions)}
    finally:
        consumer.close()
    if sum(ends.values()) != count:
        raise LiqbotError(f"the topics hold {sum(ends.values())} messages, {count} were produced")
    return {tp: end for tp, end in ends.items() if end > 0}


def _consumer(work: Workload, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": work.clients.settings.kafka.bootstrap_servers, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})


def read_all(work: Workload, ends: dict[tuple[str, int], int]) -> list[Message]:
    """Every message, as a plain consumer polls them (the order the sink's batches are cut in)."""
    consumer = _consumer(work, f"bench-sink-read-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
    total, out = sum(ends.values()), list[Message]()
    deadline = time.monotonic() + 300
    try:
        while len(out) < total and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=min(100_000, total - len(out)), timeout=1.0):
                if m.error() is not None:
                    raise KafkaException(m.error())
                out.append(m)
    finally:
        consumer.close()
    if len(out) != total:
        raise LiqbotError(f"read {len(out)} of {total} messages back")
    return out


def topic_ids(work: Workload) -> dict[str, str]:
    admin = work.clients.admin()  # it must outlive its futures
    described = admin.describe_topics(TopicCollection(list(work.tables)))
    return {name: str(future.result(timeout=30).topic_id) for name, future in described.items()}


def sink_batches(work: Workload, messages: list[Message], batch_rows: int) -> list[TableBatch]:
    """The Arrow tables the sink builds of these messages: `batch_rows` at a time, one table per topic."""
    ids, tables, serde = topic_ids(work), work.tables, work.clients.serde
    out: list[TableBatch] = []
    for start in range(0, len(messages), batch_rows):
        by_topic: dict[str, list[Message]] = {}
        for m in messages[start:start + batch_rows]:
            by_topic.setdefault(m.topic() or "", []).append(m)
        for topic, group in by_topic.items():
            batches, rejected = build(serde, tables[topic], topic, ids[topic], group)
            if rejected:
                raise LiqbotError(f"{topic}: {len(rejected)} real records rejected: {rejected[0].reason}")
            out.extend(batches)
    return out


def baseline(client: Client, batches: list[TableBatch]) -> float:
    """Seconds of plain `insert_arrow` calls of the prebuilt tables into a fresh copy of the tables."""
    client.command(f"CREATE DATABASE {_BASELINE_DB}")
    for table in {b.table for b in batches}:
        client.command(f"CREATE TABLE {_BASELINE_DB}.{table} AS default.{table}")
    start = time.perf_counter()
    for batch in batches:
        client.insert_arrow(batch.table, batch.rows, database=_BASELINE_DB)
    seconds = time.perf_counter() - start
    client.command(f"DROP DATABASE {_BASELINE_DB} SYNC")  # its merges would run during the sink's turn
    return seconds


@dataclass
class SinkRun:
    seconds: float  # run() called -> every partition's end committed
    first_commit_s: float
    inserts: int
    rows: int
    dead_letters: int


def run_sink(work: Workload, client: Client, ends: dict[tuple[str, int], int], timeout_s: float) -> SinkRun:
    """`TableSink.run` in a thread; timed until the group's committed offsets reach `ends`."""
    config = SinkConfig(group_id="bench-sink")
    clients = work.clients
    sink = TableSink(clients.settings, clients.serde, client, clients.dead_letters, config)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            sink.run()
        except BaseException as exc:
            failed.append(exc)

    watcher = _consumer(work, clients.settings.kafka.topic_prefix + config.group_id)
    partitions = [TopicPartition(t, p) for t, p in ends]
    thread = threading.Thread(target=run, name="bench-sink", daemon=True)
    first = 0.0
    start = time.perf_counter()
    thread.start()
    try:
        while True:
            time.sleep(0.01)
            committed = {(tp.topic, tp.partition): tp.offset for tp in watcher.committed(partitions, timeout=10)}
            now = time.perf_counter()
            if not first and any(o >= 0 for o in committed.values()):
                first = now - start
            if all(committed[tp] >= end for tp, end in ends.items()):
                break
            if failed or not thread.is_alive() or now - start > timeout_s:
                raise LiqbotError(f"the sink committed {sum(max(0, o) for o in committed.values())} of "
                                  f"{sum(ends.values())} records") from (failed[0] if failed else None)
        seconds = now - start
    finally:
        watcher.close()
        sink.stop.set()
        thread.join(60)
    return SinkRun(seconds, first, sink.counts.inserts, sum(sink.counts.rows.values()), sink.counts.dead_letters)


def landed(client: Client, work: Workload) -> int:
    """Rows of the workload's topics in the store, counted by ClickHouse."""
    parts = " UNION ALL ".join(f"SELECT count() AS c FROM {table} WHERE _topic = '{topic}'"
                               for topic, table in work.tables.items())
    return int(client.query(f"SELECT sum(c) FROM ({parts})").result_rows[0][0])


def throughput(settings: Settings, records: list[AvroRecord], count: int, home: Path,
               timeout_s: float) -> dict[str, Any]:
    work = workload(settings, records, "throughput")
    ends = produce(work, count)
    batch_rows = SinkConfig().batch_rows
    messages = read_all(work, ends)
    start = time.perf_counter()
    batches = sink_batches(work, messages, batch_rows)
    build_s = time.perf_counter() - start
    client = connect(StoreSettings(path=home / "clickhouse"))
    apply_migrations(client)
    baseline_s = baseline(client, batches)
    baseline_inserts = len(batches)
    del messages, batches
    gc.collect()
    gc.freeze()  # the records and payloads this process holds are no part of a sink's heap: out of its collections
    run = run_sink(work, client, ends, timeout_s)
    rows = landed(client, work)
    client.close()
    return {"work": work, "baseline_s": baseline_s, "baseline_inserts": baseline_inserts, "build_s": build_s,
            "run": run, "landed": rows, "batch_rows": batch_rows}


@dataclass
class Sample:
    topic: str
    sent_ns: int
    acked_ns: int = 0
    partition: int = -1
    offset: int = -1
    found_ns: int = 0


@dataclass
class Watcher:
    """Polls the sink's SQL endpoint for the acked samples not yet found; marks each with the reply's time."""

    store: StoreSettings
    tables: dict[str, str]
    waiting: dict[tuple[str, int, int], Sample] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    queries: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.waiting[(sample.topic, sample.partition, sample.offset)] = sample

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                pending = list(self.waiting)
            if pending:
                try:
                    self._poll(pending)
                except LiqbotError as exc:  # the sink busy or restarting: the sample stays outstanding
                    self.errors.append(str(exc)[:200])
            time.sleep(_POLL_S)

    def _poll(self, pending: list[tuple[str, int, int]]) -> None:
        by_topic: dict[str, list[str]] = {}
        for topic, partition, offset in pending:
            by_topic.setdefault(topic, []).append(f"({partition}, {offset})")
        sql = " UNION ALL ".join(
            f"SELECT _partition, _offset, '{topic}' FROM {self.tables[topic]} WHERE _topic = '{topic}' "
            f"AND (_partition, _offset) IN ({', '.join(keys)})" for topic, keys in by_topic.items())
        out = run_query(self.store, sql, "TabSeparated")
        now = time.monotonic_ns()
        self.queries += 1
        with self.lock:
            for line in out.decode().splitlines():
                part, off, name = line.split("\t")
                sample = self.waiting.pop((name, int(part), int(off)), None)
                if sample is not None:
                    sample.found_ns = now


def pace(work: Workload, start_at: int, count: int, rate: float, *, sample_every: int,
         watcher: Watcher | None) -> list[Sample]:
    """`count` payloads from `start_at` at `rate`/s, the live producers' settings; each `sample_every`-th sampled."""
    producer = Producer(producer_config(work.clients.settings.kafka))
    samples: list[Sample] = []
    failures: list[str] = []

    def on_delivery(sample: Sample) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(err.str())
                return
            sample.acked_ns, sample.partition = time.monotonic_ns(), msg.partition() or 0
            sample.offset = msg.offset() or 0
            if watcher is not None:
                watcher.add(sample)
        return delivered

    payloads = work.payloads
    start = time.perf_counter()
    for i in range(count):
        ahead_s = start + i / rate - time.perf_counter()
        if ahead_s > 0.0005:
            time.sleep(ahead_s)
        topic, value, key = payloads[(start_at + i) % len(payloads)]
        if i % sample_every == 0:
            sample = Sample(topic, time.monotonic_ns())
            samples.append(sample)
            producer.produce(topic, value, key, on_delivery=on_delivery(sample))
        else:
            producer.produce(topic, value, key)
        producer.poll(0)
    if producer.flush(30) or failures:
        raise LiqbotError(f"freshness: records undelivered ({failures[:3]})")
    return samples


def _serving(store: StoreSettings, sink: SinkProcess, timeout_s: float = 120.0) -> None:
    """Until the child sink serves SQL (before that, run_query here would open chDB and lock the sink out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if int(json.loads(endpoint_file(store).read_text())["pid"]) == sink.process.pid:
                return
        except (FileNotFoundError, ValueError, KeyError):
            pass
        if sink.process.poll() is not None or time.monotonic() > deadline:
            raise LiqbotError(f"the sink did not start serving SQL; its log:\n{sink.tail()}")
        time.sleep(0.1)


def _count(store: StoreSettings, work: Workload) -> int:
    parts = " UNION ALL ".join(f"SELECT count() AS c FROM {table} WHERE _topic = '{topic}'"
                               for topic, table in work.tables.items())
    return int(run_query(store, f"SELECT sum(c) FROM ({parts})", "TabSeparated").decode().strip() or 0)


def _wait_count(store: StoreSettings, work: Workload, expected: int, sink: SinkProcess, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while (got := _count(store, work)) < expected:
        if sink.process.poll() is not None or time.monotonic() > deadline:
            raise LiqbotError(f"freshness: {got} of {expected} rows landed; the sink's log:\n{sink.tail()}")
        time.sleep(0.1)
    return got


def inserted_lag_ms(store: StoreSettings, work: Workload, since_ms: int) -> tuple[float, float]:
    """p50 and p99 of ClickHouse's own `_inserted` stamp minus the record's Kafka CreateTime (whole ms), over every
    row produced from `since_ms`: when the insert began, a lower bound of when the row became queryable."""
    parts = " UNION ALL ".join(
        f"SELECT toUnixTimestamp64Milli(_inserted) - toUnixTimestamp64Milli(_kafka_ts) AS ms FROM {table} "
        f"WHERE _topic = '{topic}' AND toUnixTimestamp64Milli(_kafka_ts) >= {since_ms}"
        for topic, table in work.tables.items())
    out = run_query(store, f"SELECT quantilesExact(0.5, 0.99)(ms) FROM ({parts})", "TabSeparated").decode()
    p50, p99 = (float(x) for x in out.strip().strip("[]").split(","))
    return p50, p99


def freshness(settings: Settings, source: Workload, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    work = reframed(source, settings, "fresh")
    store = StoreSettings(path=home / "clickhouse")
    warmup = max(1, int(args.rate))  # one second, unsampled: the sink is assigned and inserting before timing
    timed = int(args.rate * args.freshness_s)
    with SinkProcess(work.clients.settings, home) as sink:
        _serving(store, sink)
        pace(work, 0, warmup, args.rate, sample_every=warmup + 1, watcher=None)
        _wait_count(store, work, warmup, sink, 120)
        watcher = Watcher(store, work.tables)
        thread = threading.Thread(target=watcher.run, name="bench-sink-watcher", daemon=True)
        thread.start()
        cpu = sink.cpu_seconds()
        started, started_ms = time.perf_counter(), time.time_ns() // 1_000_000
        samples = pace(work, warmup, timed, args.rate, sample_every=args.sample_every, watcher=watcher)
        paced_s = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while watcher.waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = (sink.cpu_seconds() - cpu) / (time.perf_counter() - started)
        watcher.stopping.set()
        thread.join(10)
        rows = _wait_count(store, work, warmup + timed, sink, 60)
        inserted = inserted_lag_ms(store, work, started_ms)
    found = [s for s in samples if s.found_ns]
    sent = sorted(s.found_ns - s.sent_ns for s in found)
    acked = sorted(s.found_ns - s.acked_ns for s in found)
    return {"samples": len(samples), "found": len(found), "sent_ns": sent, "acked_ns": acked, "rows": rows,
            "produced": warmup + timed, "rate": timed / paced_s, "queries": watcher.queries,
            "query_errors": len(watcher.errors), "sink_cpu": cpu, "inserted_ms": inserted}


def _q(samples: list[int], q: float) -> float:
    return round(percentile_ms(samples, q), 1) if samples else float("nan")


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="liqbot bench sink")
    parser.add_argument("--records", type=int, default=500_000,
                        help="records produced for the throughput run, the captures repeated (%(default)s)")
    parser.add_argument("--rate", type=float, default=10_000.0, help="freshness: records/s produced (%(default)s)")
    parser.add_argument("--freshness-s", type=float, default=20.0, help="freshness: seconds produced (%(default)s)")
    parser.add_argument("--sample-every", type=int, default=50,
                        help="freshness: every N-th record is looked for in ClickHouse (%(default)s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the sink may take")
    args = parser.parse_args(argv)

    records = real_records()
    print(f"bench sink: {len(records)} real records (Binance USD-M, Bybit captures) repeated to {args.records}, "
          f"{settings.kafka.partitions} partitions, on {settings.kafka.bootstrap_servers}; chDB", flush=True)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-sink-") as home:
        t = throughput(settings, records, args.records, Path(home) / "throughput", args.timeout)
        f = freshness(settings, t["work"], args, Path(home) / "fresh")
    load_after = os.getloadavg()[0]
    run: SinkRun = t["run"]
    sink_rps, baseline_rps = args.records / run.seconds, args.records / t["baseline_s"]
    ratio = round(sink_rps / baseline_rps, 3)
    p50, p99 = _q(f["sent_ns"], 0.5), _q(f["sent_ns"], 0.99)
    figures = {
        "sink_records_per_s": round(sink_rps), "baseline_records_per_s": round(baseline_rps),
        "sink_over_baseline": ratio, "records": args.records, "landed_rows": t["landed"],
        "sink_rows": run.rows, "dead_letters": run.dead_letters, "sink_seconds": round(run.seconds, 3),
        "sink_first_commit_s": round(run.first_commit_s, 3), "sink_inserts": run.inserts,
        "baseline_inserts": t["baseline_inserts"], "batch_rows": t["batch_rows"],
        "build_records_per_s": round(args.records / t["build_s"]),
        "freshness_p50_ms": p50, "freshness_p99_ms": p99, "freshness_max_ms": _q(f["sent_ns"], 1.0),
        "freshness_from_ack_p50_ms": _q(f["acked_ns"], 0.5), "freshness_from_ack_p99_ms": _q(f["acked_ns"], 0.99),
        "freshness_inserted_p50_ms": f["inserted_ms"][0], "freshness_inserted_p99_ms": f["inserted_ms"][1],
        "freshness_samples": f["samples"], "freshness_found": f["found"], "freshness_rows": f["rows"],
        "freshness_produced": f["produced"], "freshness_rate_per_s": round(f["rate"]),
        "freshness_queries": f["queries"], "freshness_query_errors": f["query_errors"],
        "freshness_sink_cpu_share": round(f["sink_cpu"], 2), "load_avg_1m": [round(load, 2), round(load_after, 2)],
        "target_records_per_s": _TARGET_RECORDS_PER_S, "target_over_baseline": _TARGET_OVER_BASELINE,
        "target_freshness_p99_ms": _TARGET_FRESHNESS_P99_MS,
        "records_per_s_met": sink_rps >= _TARGET_RECORDS_PER_S, "over_baseline_met": ratio >= _TARGET_OVER_BASELINE,
        "freshness_met": f["found"] == f["samples"] and p99 <= _TARGET_FRESHNESS_P99_MS,
    }
    figures["targets_met"] = all(figures[k] for k in ("records_per_s_met", "over_baseline_met", "freshness_met"))
    report("sink", [
        (f"sink, in this process: run() -> all {args.records:,} committed ({run.seconds:.2f} s, "
         f"{run.inserts} inserts)", f"{sink_rps:,.0f} records/s"),
        ("  first commit after run() was called", f"{run.first_commit_s:.2f} s"),
        (f"baseline: insert_arrow of the same Arrow tables, in memory ({t['baseline_inserts']} inserts, "
         f"batches of <= {t['batch_rows']:,} messages cut per topic)", f"{baseline_rps:,.0f} records/s"),
        ("sink / baseline", f"{ratio}"),
        ("in memory: decode + convert to those tables (build)", f"{figures['build_records_per_s']:,} records/s"),
        ("rows in ClickHouse (counted) / records produced", f"{t['landed']:,} / {args.records:,}"),
        (f"freshness: `liqbot sink` child, {f['rate']:,.0f} records/s for {args.freshness_s:g} s; send -> a query "
         f"through its SQL endpoint returns the row (polled every {_POLL_S * 1000:g} ms), p50 / p99 / max",
         f"{p50} / {p99} / {figures['freshness_max_ms']} ms"),
        ("  the same from the delivery ack, p50 / p99",
         f"{figures['freshness_from_ack_p50_ms']} / {figures['freshness_from_ack_p99_ms']} ms"),
        ("  every timed row: ClickHouse's `_inserted` - Kafka CreateTime, p50 / p99 (insert began; ms stamps)",
         f"{figures['freshness_inserted_p50_ms']:g} / {figures['freshness_inserted_p99_ms']:g} ms"),
        ("  samples found / taken; rows landed / produced",
         f"{f['found']} / {f['samples']}; {f['rows']:,} / {f['produced']:,}"),
        ("  the sink's CPU while paced (share of one core)", f"{f['sink_cpu']:.2f}"),
        ("targets: >= 200,000 records/s; >= 0.5 x baseline; freshness p99 <= 1000 ms",
         f"{figures['records_per_s_met']}; {figures['over_baseline_met']}; {figures['freshness_met']}"),
        ("load average (1 min) before / after", f"{load:.2f} / {load_after:.2f}"),
    ], figures)
    return 0
