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
from streams.venue import FrameParser


def _frames(path: Path, venue: str) -> list[tuple[str, str, int, str]]:
    """(venue, kind, receive ns, text) of every frame, read before timing starts."""
    return [(f.venue, f.kind, f.ts_recv_ns, f.data) for f in read_capture(path, default_venue=venue)
            if f.kind != "invalid"]


def _ingestor(settings: Settings) -> tuple[Ingestor, Clients]:
    run = f"bench.ingest.{uuid.uuid4().hex[:8]}."
    clients = Clients.connect(replace(settings, kafka=replace(settings.kafka, topic_prefix=run)))
    clients.topics.ensure(clients.admin())
    return Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters), clients


def _parsers(frames: list[tuple[str, str, int, str]]) -> dict[tuple[str, str], FrameParser]:
    return {(v, k): make_parser(v, k) for v, k, _, _ in frames}


def _by_path(frames: list[tuple[str, str, int, str]]) -> tuple[list[tuple[str, str, int, str]], ...]:
    """The frames the compiled path takes, and the rest (which the Python parser takes)."""
    parsers = _parsers(frames)
    compiled: list[tuple[str, str, int, str]] = []
    python: list[tuple[str, str, int, str]] = []
    for f in frames:
        (python if parsers[(f[0], f[1])].encoded(f[3], f[2]) is None else compiled).append(f)
    return compiled, python


def _max_speed(settings: Settings, frames: list[tuple[str, str, int, str]]) -> tuple[float, float, int]:
    """Frames/s through the whole ingest path, and raw frame bytes produced as they are (the baseline)."""
    ingestor, clients = _ingestor(settings)
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
    return len(frames) / ingest_s, len(frames) / raw_s, records


def _steady(settings: Settings, frames: list[tuple[str, str, int, str]], rate: float, seconds: float) -> list[int]:
    """Receive-to-produced latency per frame (ns), frames handed over at a fixed rate."""
    ingestor, clients = _ingestor(settings)
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
    bybit_fps, _, bybit_records = _max_speed(settings, bybit)
    binance_fps, binance_raw, binance_records = _max_speed(settings, binance)
    compiled, python = _by_path(binance)
    compiled_fps, _, _ = _max_speed(settings, compiled)
    python_fps, _, _ = _max_speed(settings, python)
    latencies = _steady(settings, [f for f in bybit if f[1] == "recv"], args.rate, args.seconds)
    p50, p99 = percentile_ms(latencies, 0.50), percentile_ms(latencies, 0.99)
    figures = {
        "frames_per_s": round(binance_fps), "p99_receive_to_produce_ms": round(p99, 3),
        "p50_receive_to_produce_ms": round(p50, 3), "bybit_frames_per_s": round(bybit_fps),
        "raw_frames_per_s": round(binance_raw), "compiled_path_frames_per_s": round(compiled_fps),
        "python_path_frames_per_s": round(python_fps), "python_path_frames": len(python),
        "ingest_over_raw": round(binance_fps / binance_raw, 3),
        "binance_records": binance_records, "bybit_records": bybit_records, "rate_per_s": args.rate,
        "target_frames_per_s": 100_000, "target_p99_ms": 1.0,
    }
    report("ingest", [
        (f"Binance capture ({len(binance)} frames), full path", f"{binance_fps:,.0f} frames/s"),
        (f"Bybit capture ({len(bybit)} frames, 200-level books), full path", f"{bybit_fps:,.0f} frames/s"),
        (f"  of which trades and book tickers ({len(compiled)}, compiled path)", f"{compiled_fps:,.0f} frames/s"),
        (f"  of which depth diffs and snapshots ({len(python)}, Python path)", f"{python_fps:,.0f} frames/s"),
        ("raw frame bytes produced, same run (baseline)", f"{binance_raw:,.0f} frames/s"),
        ("ingest / raw", f"{binance_fps / binance_raw:.3f}"),
        (f"receive to produced at {args.rate:,.0f} frames/s, p50", f"{p50:.3f} ms"),
        (f"receive to produced at {args.rate:,.0f} frames/s, p99", f"{p99:.3f} ms"),
    ], figures)
    return 0
