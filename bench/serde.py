"""`liqbot bench serde`: real Bybit trades as Avro through the real broker, against raw bytes in the same run."""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench import percentile_ms, report
from liqbot.config import Settings
from liqbot.data import BYBIT_CAPTURE
from schemas.records import Trade
from streams.consumer import consumer_config
from streams.producer import Headers, RecordProducer
from streams.roundtrip import records_from_captures
from streams.serde import Serde, make_serde


def real_trades() -> list[Trade]:
    """Every trade of the real capture (linear and spot), as the live path makes them."""
    return [r for r in records_from_captures([BYBIT_CAPTURE]).records if isinstance(r, Trade)]


def workload(base: list[Trade], n: int) -> list[Trade]:
    """`n` trades: the real ones repeated, each copy with its own id (copy number appended)."""
    return [replace(base[i % len(base)], event_id=f"{base[i % len(base)].event_id}#{i // len(base)}")
            for i in range(n)]


def _drain(settings: Settings, topic: str, expected: int, decode: bool, conn: Connection) -> None:
    """Consumer process: reads `expected` messages (decoding them if asked), sends back (done_ns, latencies)."""
    serde = make_serde(settings.serde) if decode else None
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex[:8]}",
                                        **{"enable.auto.commit": False, "fetch.wait.max.ms": 1}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.kafka.partitions)])
    consumer.consume(num_messages=1, timeout=0.5)  # connected and fetching before the producer starts
    conn.send("ready")
    latencies_ns: list[int] = []
    got = 0
    while got < expected:
        # consume() waits for a full batch or its timeout, so a short timeout bounds the added latency.
        for msg in consumer.consume(num_messages=1000, timeout=0.001):
            if msg.error():
                continue
            if serde is not None:
                serde.decode(topic, msg.value() or b"")
            sent_ns = dict(msg.headers() or ()).get("sent_ns")
            if isinstance(sent_ns, bytes):
                latencies_ns.append(time.time_ns() - int(sent_ns))
            got += 1
    conn.send((time.time_ns(), latencies_ns))
    consumer.close()


def _start_drain(settings: Settings, topic: str, expected: int, decode: bool) -> tuple[BaseProcess, Connection]:
    """A separate consumer process, as in the pipeline: no GIL shared with the producer."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_drain, args=(settings, topic, expected, decode, theirs), daemon=True)
    proc.start()
    if ours.recv() != "ready":
        raise RuntimeError("benchmark consumer failed to start")
    return proc, ours


def _finish_drain(proc: BaseProcess, conn: Connection) -> tuple[int, list[int]]:
    done_ns, latencies = conn.recv()
    proc.join()
    return int(done_ns), list(latencies)


def _full_speed(settings: Settings, topic: str, trades: list[Trade], serde: Serde, avro: bool) -> float:
    producer = RecordProducer(settings.kafka, serde)
    payloads = [serde.encode(topic, t) for t in trades[:1]]  # registers the schema before timing
    if not avro:
        payloads = [serde.encode(topic, t) for t in trades]
    proc, conn = _start_drain(settings, topic, len(trades), decode=avro)
    start = time.time_ns()
    for i, trade in enumerate(trades):
        if avro:
            producer.send(topic, trade, key=trade.symbol)
        else:
            producer.send_raw(topic, payloads[i], key=trade.symbol)
    producer.flush()
    done_ns, _ = _finish_drain(proc, conn)
    return len(trades) / ((done_ns - start) / 1e9)


def _fixed_rate(settings: Settings, topic: str, trades: list[Trade], serde: Serde, rate: float) -> list[int]:
    producer = RecordProducer(settings.kafka, serde)
    proc, conn = _start_drain(settings, topic, len(trades), decode=True)
    start = time.perf_counter()
    for i, trade in enumerate(trades):
        ahead_s = start + i / rate - time.perf_counter()
        if ahead_s > 0:
            time.sleep(ahead_s)  # the schedule absorbs sleep overshoot: the average rate holds
        # the first second warms up connections, leaders and the idempotent producer id: not timed
        headers: Headers | None = [("sent_ns", str(time.time_ns()).encode())] if i >= rate else None
        producer.send(topic, trade, key=trade.symbol, headers=headers)
    producer.flush()
    _, latencies = _finish_drain(proc, conn)
    return sorted(latencies)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="liqbot bench serde")
    parser.add_argument("--records", type=int, default=100_000, help="records per full-speed run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the 5,000/s run (+1 s warm-up)")
    parser.add_argument("--rate", type=float, default=5000.0, help="records/s of the fixed-rate run")
    args = parser.parse_args(argv)

    run = uuid.uuid4().hex[:8]
    topics = {kind: f"bench.serde.{run}.{kind}" for kind in ("avro", "raw", "rate")}
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for future in admin.create_topics([NewTopic(t, settings.kafka.partitions, 1) for t in topics.values()]).values():
        future.result()
    serde = make_serde(settings.serde)
    try:
        base = real_trades()
        trades = workload(base, max(args.records, int((args.seconds + 1) * args.rate)))
        print(f"bench serde: {len(base)} real trades, {args.records} records per full-speed run, "
              f"{args.rate:.0f}/s for {args.seconds:.0f}s, serde {settings.serde.kind}")
        raw = _full_speed(settings, topics["raw"], trades[: args.records], serde, avro=False)
        avro = _full_speed(settings, topics["avro"], trades[: args.records], serde, avro=True)
        latencies = _fixed_rate(settings, topics["rate"], trades[: int((args.seconds + 1) * args.rate)], serde,
                                args.rate)
    finally:
        for future in admin.delete_topics(list(topics.values())).values():
            future.result()
    figures = {
        "avro_records_per_s": round(avro), "raw_records_per_s": round(raw), "avro_over_raw": round(avro / raw, 3),
        "p50_ms": round(percentile_ms(latencies, 0.50), 3), "p99_ms": round(percentile_ms(latencies, 0.99), 3),
        "rate_per_s": args.rate, "latency_samples": len(latencies), "serde": settings.serde.kind,
    }
    report("serde", [
        ("full speed, Avro encode+produce+consume+decode", f"{avro:,.0f} records/s"),
        ("full speed, raw bytes (same run)", f"{raw:,.0f} records/s"),
        ("Avro / raw", f"{avro / raw:.3f}"),
        (f"produce-to-consume at {args.rate:,.0f}/s, p50", f"{figures['p50_ms']} ms"),
        (f"produce-to-consume at {args.rate:,.0f}/s, p99", f"{figures['p99_ms']} ms"),
    ], figures)
    return 0
