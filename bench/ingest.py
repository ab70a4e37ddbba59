"""`liqbot bench ingest`: real frames through parse, book checks, Avro encode and produce, on one core."""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import replace
from pathlib import Path

from bench import percentile_ms, report
from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE
from streams.capture import read_capture
from streams.capture_replay import make_parser
from streams.clients import Clients
from streams.ingest import Ingestor, KafkaSink
from streams.orderbook import BookBuilder
from streams.venue import FrameParser


def _frames(path: Path, venue: str) -> list[tuple[str, str, int, str]]:
    """(venue, kind, receive ns, text) of every frame, read before timing starts."""
    return [(f.venue, f.kind, f.ts_recv_ns, f.data) for f in read_capture(path, default_venue=venue)
            if f.kind != "invalid"]


def _ingestor(settings: Settings) -> tuple[Ingestor, Clients, float]:
    """An ingest path on topics of its own, and the seconds its schemas took to register (before any timing:
    registering is a session's set-up, a few registry round trips, not a cost per frame)."""
    run = f"bench.ingest.{uuid.uuid4().hex[:8]}."
    clients = Clients.connect(replace(settings, kafka=replace(settings.kafka, topic_prefix=run)))
    clients.topics.ensure(clients.admin())
    start = time.perf_counter()
    clients.register_schemas()
    registration_s = time.perf_counter() - start
    return Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters), clients, registration_s


def _parsers(frames: list[tuple[str, str, int, str]]) -> dict[tuple[str, str], FrameParser]:
    return {(v, k): make_parser(v, k) for v, k, _, _ in frames}


def _compiled(frames: list[tuple[str, str, int, str]]) -> list[bool]:
    """Whether the compiled path takes each frame (on books of its own: taking a frame never depends on them)."""
    parsers, books = _parsers(frames), BookBuilder()
    return [parsers[(v, k)].encoded(text, ts, books.native) is not None for v, k, ts, text in frames]


def _by_path(settings: Settings, frames: list[tuple[str, str, int, str]]) -> dict[bool, tuple[int, float]]:
    """(frames, seconds in `on_frame`) of the compiled path (True) and the Python path, timed frame by frame
    within one full run: a run of either alone would lose the books the other path feeds (REST snapshots)."""
    ingestor, clients, _ = _ingestor(settings)
    parsers = _parsers(frames)
    spent = {True: 0.0, False: 0.0}
    taken = _compiled(frames)
    clock = time.perf_counter
    for (venue, kind, ts, text), compiled in zip(frames, taken, strict=True):
        start = clock()
        ingestor.on_frame(parsers[(venue, kind)], text, ts, "bench")
        spent[compiled] += clock() - start
    clients.producer.flush(120)
    return {path: (taken.count(path), spent[path]) for path in (True, False)}


def _max_speed(settings: Settings, frames: list[tuple[str, str, int, str]]) -> tuple[float, float, int, float]:
    """Frames/s through the whole ingest path, raw frame bytes produced as they are (the baseline), records,
    and the schema registration left out of the timing."""
    ingestor, clients, registration_s = _ingestor(settings)
    parsers = _parsers(frames)
    start = time.perf_counter()
    for venue, kind, ts, text in frames:
        ingestor.on_frame(parsers[(venue, kind)], text, ts, "bench")
    clients.producer.flush(120)
    ingest_s = time.perf_counter() - start
    records = sum(ingestor.stats.records.values())
    topic = clients.topics.name("deadletter")  # any existing topic: raw bytes, no schema involved
    start = time.perf_counter()
    for _, _, _, text in frames:
        clients.producer.send_raw(topic, text.encode(), b"bench")
    clients.producer.flush(120)
    raw_s = time.perf_counter() - start
    return len(frames) / ingest_s, len(frames) / raw_s, records, registration_s


def _steady(settings: Settings, frames: list[tuple[str, str, int, str]], rate: float, seconds: float) -> list[int]:
    """Receive-to-produced latency per frame (ns), frames handed over at a fixed rate."""
    ingestor, clients, _ = _ingestor(settings)
    parsers = _parsers(frames)
    count = int(rate * seconds)
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        venue, kind, _, text = frames[i % len(frames)]
        ahead_s = start + i / rate - time.perf_counter()
        if ahead_s > 0:
            time.sleep(ahead_s)
        received = time.perf_counter_ns()
        ingestor.on_frame(parsers[(venue, kind)], text, time.time_ns(), "bench")
        latencies.append(time.perf_counter_ns() - received)
    clients.producer.flush(60)
    return sorted(latencies)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="liqbot bench ingest")
    parser.add_argument("--rate", type=float, default=2000.0, help="frames/s of the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    args = parser.parse_args(argv)

    bybit = _frames(BYBIT_CAPTURE, "bybit-linear")
    binance = _frames(BINANCE_CAPTURE, "binance-usdm")
    print(f"bench ingest: {len(bybit)} Bybit frames, {len(binance)} Binance frames, into "
          f"{settings.kafka.bootstrap_servers} (serde {settings.serde.kind})")
    bybit_fps, _, bybit_records, _ = _max_speed(settings, bybit)
    binance_fps, binance_raw, binance_records, registration_s = _max_speed(settings, binance)
    split = _by_path(settings, binance)
    (compiled, compiled_s), (python, python_s) = split[True], split[False]
    compiled_fps, python_fps = compiled / compiled_s, python / python_s if python else 0.0
    latencies = _steady(settings, [f for f in bybit if f[1] == "recv"], args.rate, args.seconds)
    p50, p99 = percentile_ms(latencies, 0.50), percentile_ms(latencies, 0.99)
    figures = {
        "frames_per_s": round(binance_fps), "p99_receive_to_produce_ms": round(p99, 3),
        "p50_receive_to_produce_ms": round(p50, 3), "bybit_frames_per_s": round(bybit_fps),
        "raw_frames_per_s": round(binance_raw), "compiled_path_frames_per_s": round(compiled_fps),
        "compiled_path_frames": compiled, "python_path_frames_per_s": round(python_fps), "python_path_frames": python,
        "ingest_over_raw": round(binance_fps / binance_raw, 3),
        "binance_records": binance_records, "bybit_records": bybit_records, "rate_per_s": args.rate,
        "schema_registration_ms": round(registration_s * 1e3, 1),
        "target_frames_per_s": 100_000, "target_p99_ms": 1.0,
    }
    report("ingest", [
        (f"Binance capture ({len(binance)} frames), full path", f"{binance_fps:,.0f} frames/s"),
        (f"Bybit capture ({len(bybit)} frames, 200-level books), full path", f"{bybit_fps:,.0f} frames/s"),
        (f"  of which trades, book tickers, depth diffs ({compiled}, compiled path)", f"{compiled_fps:,.0f} frames/s"),
        (f"  of which the rest ({python}, Python path)", f"{python_fps:,.0f} frames/s"),
        ("raw frame bytes produced, same run (baseline)", f"{binance_raw:,.0f} frames/s"),
        ("ingest / raw", f"{binance_fps / binance_raw:.3f}"),
        ("schema registration before the timed run (once per session)", f"{registration_s * 1e3:,.1f} ms"),
        (f"receive to produced at {args.rate:,.0f} frames/s, p50", f"{p50:.3f} ms"),
        (f"receive to produced at {args.rate:,.0f} frames/s, p99", f"{p99:.3f} ms"),
    ], figures)
    return 0
