"""`liqbot`: the one command-line door to every capability."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from liqbot.config import Settings
from liqbot.data import BYBIT_CAPTURE, LIQUIDATION_FRAMES, REPO
from liqbot.errors import LiqbotError

__all__ = ["main"]

DEFAULT_CAPTURES = (BYBIT_CAPTURE, LIQUIDATION_FRAMES)


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from deploy import local

    if args.action == "up":
        platform = local.up(settings, port=args.port)
        print(f"kafka up: pid {platform.broker.pid}, bootstrap {platform.broker.bootstrap}, "
              f"data {settings.broker.home}/data")
        if platform.registry:
            print(f"schema registry up: pid {platform.registry.pid}, {platform.registry.url}")
    elif args.action == "down":
        broker_was_up, registry_was_up = local.down(settings)
        print("schema registry down" if registry_was_up else "schema registry was not running")
        print("kafka down" if broker_was_up else "kafka was not running")
    else:
        return _status(settings)
    return 0


def _status(settings: Settings) -> int:
    from confluent_kafka.admin import AdminClient

    from deploy import local

    platform = local.status(settings)
    if platform is None:
        print(f"kafka: not running (home {settings.broker.home})")
        return 1
    topics = AdminClient({"bootstrap.servers": platform.broker.bootstrap}).list_topics(timeout=10).topics
    user_topics = sorted(t for t in topics if not t.startswith("__"))
    print(f"kafka: up, pid {platform.broker.pid}, bootstrap {platform.broker.bootstrap}, {len(user_topics)} topics")
    for name in user_topics:
        print(f"  {name} ({len(topics[name].partitions)} partitions)")
    reg = platform.registry
    print(f"schema registry: up, pid {reg.pid}, {reg.url}" if reg else "schema registry: not running")
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.clients import Clients

    clients = Clients.connect(_ensure_services(args, settings))
    outcome = clients.topics.ensure(clients.admin())
    print(f"{'topic':<28} {'schema':<22} {'key':<7} {'retention':>10} {'cleanup':<8} state")
    for spec in clients.topics.specs:
        name = clients.topics.name(spec)
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms / 86_400_000:g}d"
        print(f"{name:<28} {spec.schema:<22} {spec.key:<7} {retention:>10} {spec.cleanup_policy:<8} {outcome[name]}")
    return 0


def _roundtrip(args: argparse.Namespace, settings: Settings) -> int:
    from streams.clients import Clients
    from streams.roundtrip import records_from_captures, roundtrip

    settings = _ensure_services(args, settings)
    captures = [Path(p) for p in args.capture] or list(DEFAULT_CAPTURES)
    missing = [str(p) for p in captures if not p.exists()]
    if missing:
        raise LiqbotError(f"capture not found: {', '.join(missing)} (the real data lives in ../shared/data)")
    parsed = records_from_captures(captures)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(parsed.frames.items()))
    print(f"parsed {sum(parsed.frames.values())} frames from {len(captures)} captures ({kinds}) "
          f"into {len(parsed.records)} records")
    for error in parsed.errors:
        print(f"  parse error: {error}")
    clients = Clients.connect(settings)
    clients.topics.ensure(clients.admin())
    results = roundtrip(parsed.records, clients.topics, clients.producer,
                        lambda topics, group: clients.consumer(topics, group, from_now=True))
    print(f"\n{'topic':<26} {'schema':<20} {'sent':>6} {'back':>6}  identical  per-key order")
    for r in results:
        print(f"{r.topic:<26} {r.schema:<20} {r.sent:>6} {r.received:>6}  {'yes' if r.identical else 'NO':<9}  "
              f"{'yes' if r.in_key_order else 'NO'}")
    ok = all(r.identical and r.in_key_order for r in results)
    summary = {"records_sent": sum(r.sent for r in results), "records_received": sum(r.received for r in results),
               "topics": len(results), "identical": ok, "serde": settings.serde.kind,
               "bootstrap": settings.kafka.bootstrap_servers}
    print(json.dumps(summary))
    return 0 if ok else 1


def _ensure_services(args: argparse.Namespace, settings: Settings) -> Settings:
    from deploy import local

    return local.ensure(settings, bootstrap=args.bootstrap, registry_url=args.registry)


def _replay_capture(args: argparse.Namespace, settings: Settings) -> int:
    from streams.capture_replay import DEFAULT_VENUES, replay_captures
    from streams.ingest import CountingSink, Ingestor

    paths = [Path(p) for p in args.files]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise LiqbotError(f"capture not found: {', '.join(missing)}")
    speed = None if args.speed == "max" else float(args.speed)
    venue = DEFAULT_VENUES[args.venue]
    if args.dry_run:
        ingestor = Ingestor(CountingSink())
        stats = replay_captures(paths, ingestor, venue=venue, speed=speed)
    else:
        from streams.clients import Clients
        from streams.ingest import KafkaSink

        clients = Clients.connect(_ensure_services(args, settings))
        clients.topics.ensure(clients.admin())
        ingestor = Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters)
        stats = replay_captures(paths, ingestor, venue=venue, speed=speed)
        if clients.producer.flush(60):
            raise LiqbotError("records still undelivered after 60 s; is the broker up? (`liqbot kafka status`)")
    for kind, count in sorted(stats.frames.items()):
        print(f"  frames {kind:<12} {count:>8}")
    for schema, count in sorted(stats.records.items()):
        print(f"  records {schema:<22} {count:>8}")
    print(f"  book gaps {stats.gaps}, deltas dropped until a snapshot {stats.dropped_deltas}, "
          f"repeated liquidation frames dropped {stats.repeated_frames}")
    print(json.dumps(stats.summary()))
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    """`liqbot ingest` and `liqbot record`: a venue's live public stream into Kafka (and a capture file)."""
    import asyncio
    import signal

    from prometheus_client import start_http_server

    from streams.capture import CaptureWriter
    from streams.clients import Clients
    from streams.ingest import Ingestor, KafkaSink
    from streams.live import LiveSession

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    settings = _ensure_services(args, settings)
    clients = Clients.connect(settings)
    clients.topics.ensure(clients.admin())
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1")
    ingestor = Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters)
    venue = "binance-usdm" if args.venue == "binance" else f"bybit-{args.market}"
    writer = CaptureWriter(Path(args.out), venue) if getattr(args, "out", None) else None
    recorder = (lambda text, ts_ns: writer.frame("ws", text, ts_ns)) if writer else None
    client = _live_client(args, symbols, venue, ingestor, writer=writer, recorder=recorder)
    session = LiveSession(client, ingestor)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.seconds:
            loop.call_later(args.seconds, stop.set)
        print(f"streaming {len(symbols)} symbols from {venue} into {settings.kafka.bootstrap_servers} (Ctrl-C stops)")
        await session.run(stop)
        print(f"stopped: reconnects {client.reconnects}")

    try:
        asyncio.run(main())
    finally:
        if writer is not None:
            writer.close()
            print(f"recorded {writer.frames} frames to {writer.path}")
        clients.producer.flush(30)
    print(json.dumps(ingestor.stats.summary()))
    return 0


def _live_client(args: argparse.Namespace, symbols: tuple[str, ...], venue: str, ingestor: Ingestor, *,
                 writer: CaptureWriter | None, recorder: Callable[[str, int], None] | None) -> StreamClient:
    """The venue's stream client; Bybit's REST history is fetched (and recorded) before it starts."""
    if venue == "binance-usdm":
        from streams.binance.client import BinanceClient, BinanceStreamConfig

        config = BinanceStreamConfig(symbols=symbols, depth_speed=args.depth_speed,
                                     **({"ws_base": args.url} if args.url else {}),
                                     **({"rest_base": args.rest_url} if args.rest_url else {}))
        rest_recorder = (lambda url, text, ts_ns: writer.frame("rest", text, ts_ns, kind="http", url=url)) \
            if writer else None
        return BinanceClient(config, ingestor.on_frame, recorder=recorder, rest_recorder=rest_recorder)
    from streams.bybit.client import PUBLIC_URLS, BybitPublicClient, BybitStreamConfig
    from streams.bybit.rest import BybitRest
    from streams.live import bybit_rest_history

    bybit = BybitStreamConfig(symbols=symbols, venue=venue, url=args.url or PUBLIC_URLS[venue],
                              book_depth=args.depth, kline=args.kline)
    if not args.no_rest:
        bybit_rest_history(bybit, BybitRest(args.rest_url or "https://api.bybit.com"), ingestor, writer)
    if writer is not None:
        writer.connect("ws", bybit.url)
    return BybitPublicClient(bybit, ingestor.on_frame, recorder=recorder)


def _import_trades(args: argparse.Namespace, settings: Settings) -> int:
    from streams.bybit.archive import read_trade_archive
    from streams.clients import Clients
    from streams.ingest import KafkaSink

    clients = Clients.connect(_ensure_services(args, settings))
    clients.topics.ensure(clients.admin())
    sink = KafkaSink(clients.producer, clients.topics)
    imported = errors = 0
    for name in args.files:
        for row in read_trade_archive(Path(name), venue=f"bybit-{args.market}"):
            if row.trade is None:
                errors += 1
                clients.dead_letters.send(source=f"archive:{name}", stage="parse", error=ValueError(row.error),
                                          raw=row.raw.encode())
                continue
            sink.send_all([row.trade])
            imported += 1
            if imported % 100_000 == 0:
                print(f"  {imported} trades")
    if clients.producer.flush(60):
        raise LiqbotError("records still undelivered after 60 s; is the broker up? (`liqbot kafka status`)")
    print(json.dumps({"files": len(args.files), "trades": imported, "errors": errors}))
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    import schemas
    from schemas.compatibility import full_incompatibilities

    released = schemas.load_dir(schemas.RELEASED_DIR)
    failures = 0
    for name, current in schemas.load_all().items():
        old = released.get(name)
        problems = full_incompatibilities(current.raw, old.raw) if old else []
        state = "new (not yet released)" if old is None else ("compatible" if not problems else "INCOMPATIBLE")
        print(f"{name:<24} {current.fingerprint.hex()}  {state}")
        for p in problems:
            print(f"    {p}")
        failures += bool(problems)
    for name in sorted(set(released) - set(schemas.load_all())):
        print(f"{name:<24} REMOVED: consumers of the released version still expect it")
        failures += 1
    return 1 if failures else 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench import run_benchmark

    return run_benchmark(args.name, args.rest, _ensure_services(args, settings), Path(args.results_dir))


def _test(args: argparse.Namespace, settings: Settings) -> int:
    cmd = [sys.executable, "-m", "pytest", *(args.rest or ["-q"])]
    return subprocess.call(cmd, cwd=REPO)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liqbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--bootstrap", help="use this Kafka instead of the local broker")
    remote.add_argument("--registry", help="with --bootstrap: the schema registry's ccompat/v7 URL")

    _platform_commands(sub, remote)
    _stream_commands(sub, remote)
    _dev_commands(sub, remote)
    return parser


if TYPE_CHECKING:
    from streams.capture import CaptureWriter
    from streams.ingest import Ingestor
    from streams.live import StreamClient

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _platform_commands(sub: Subparsers, remote: argparse.ArgumentParser) -> None:
    kafka = sub.add_parser("kafka", help="the local Apache Kafka broker (KRaft, no Docker) and schema registry")
    kafka.add_argument("action", choices=["up", "down", "status"])
    kafka.add_argument("--port", type=int, default=9092,
                       help="Kafka port on 127.0.0.1; controller port+1, registry port+2, its management port+3")
    kafka.set_defaults(func=_kafka)

    topics = sub.add_parser("topics", parents=[remote], help="create the registry's topics (idempotent), list them")
    topics.set_defaults(func=_topics)


def _stream_commands(sub: Subparsers, remote: argparse.ArgumentParser) -> None:
    rt = sub.add_parser("roundtrip", parents=[remote], help="real Bybit frames through Avro and Kafka and back")
    rt.add_argument("capture", nargs="*", help="capture files (default: the real ones in ../shared/data/bybit)")
    rt.set_defaults(func=_roundtrip)

    rc = sub.add_parser("replay-capture", parents=[remote],
                        help="captured frames through the live parser and producer (or --dry-run: counts only)")
    rc.add_argument("files", nargs="+", help="captures: recorder JSON lines, raw frames, or '<time> <frame>' lines")
    rc.add_argument("--speed", default="max", help="1, 10, ... times the recorded pace, or max (default)")
    rc.add_argument("--venue", choices=["bybit", "binance"], default="bybit",
                    help="venue of lines that do not say it themselves")
    rc.add_argument("--dry-run", action="store_true", help="parse and check only; no Kafka")
    rc.set_defaults(func=_replay_capture)

    live = argparse.ArgumentParser(add_help=False)
    live.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    live.add_argument("--venue", choices=["bybit", "binance"], default="bybit")
    live.add_argument("--market", choices=["linear", "spot"], default="linear")
    live.add_argument("--depth", type=int, default=50, help="order-book depth (Bybit: 1, 50, 200, 500)")
    live.add_argument("--kline", action="store_true", help="also subscribe kline.1 (counted, not stored)")
    live.add_argument("--depth-speed", default="100ms", help="Binance diff-depth update speed: 0ms, 100ms, 250ms")
    live.add_argument("--url", help="WebSocket URL (Bybit) or base (Binance); default: the venue's public stream")
    live.add_argument("--rest-url", help="REST base URL (default: api.bybit.com or fapi.binance.com)")
    live.add_argument("--no-rest", action="store_true", help="skip the instruments request")
    live.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    live.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")

    ing = sub.add_parser("ingest", parents=[remote, live], help="the live public stream into Kafka")
    ing.set_defaults(func=_ingest)
    rec = sub.add_parser("record", parents=[remote, live], help="like ingest, and write every raw frame to a file")
    rec.add_argument("--out", required=True, help="capture file (zstandard JSON lines; replay-capture reads it)")
    rec.set_defaults(func=_ingest)

    imp = sub.add_parser("import-trades", parents=[remote], help="Bybit's public daily trade archive (CSV) into Kafka")
    imp.add_argument("files", nargs="+", help="CSV files, plain or .gz")
    imp.add_argument("--market", choices=["linear", "spot"], default="linear")
    imp.set_defaults(func=_import_trades)


def _dev_commands(sub: Subparsers, remote: argparse.ArgumentParser) -> None:
    sch = sub.add_parser("schemas", help="check schemas/ against the released snapshot")
    sch.add_argument("action", choices=["check"])
    sch.set_defaults(func=_schemas)

    bench = sub.add_parser("bench", parents=[remote], help="run a benchmark: prints a table, then one JSON line")
    bench.add_argument("--results-dir", default=str(REPO / "bench" / "results"),
                       help="where the JSON goes (default: bench/results, whose files are the published figures)")
    bench.add_argument("name")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_bench)

    test = sub.add_parser("test", help="run the test suite (pytest; extra arguments go to pytest)")
    test.add_argument("rest", nargs=argparse.REMAINDER)
    test.set_defaults(func=_test)



def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        return func(args, Settings.from_env(os.environ))
    except LiqbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
