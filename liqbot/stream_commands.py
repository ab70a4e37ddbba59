"""The stream commands of `liqbot`: roundtrip, replay-capture, ingest, record, import-trades."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from liqbot.config import Settings
from liqbot.data import BYBIT_CAPTURE, LIQUIDATION_FRAMES
from liqbot.errors import LiqbotError

if TYPE_CHECKING:
    from streams.capture import CaptureWriter
    from streams.clients import Clients
    from streams.ingest import Ingestor
    from streams.live import StreamClient

__all__ = ["connected", "ensure_services", "import_trades", "ingest", "metrics_options", "replay_capture", "roundtrip",
           "serve_metrics"]

DEFAULT_CAPTURES = (BYBIT_CAPTURE, LIQUIDATION_FRAMES)


def metrics_options() -> argparse.ArgumentParser:
    """`--metrics-port` and `--metrics-addr`, shared by every long-running command."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on PORT")
    parent.add_argument("--metrics-addr", default="127.0.0.1", metavar="ADDR",
                        help="the address to serve them on (default: %(default)s; 0.0.0.0 in a container, where "
                             "Prometheus and the probes come from another host)")
    return parent


def serve_metrics(args: argparse.Namespace, process: str) -> None:
    """Serves the metrics when `--metrics-port` was given."""
    if args.metrics_port is not None:
        from streams.metrics import serve_metrics as serve

        serve(args.metrics_port, process, args.metrics_addr)


def ensure_services(args: argparse.Namespace, settings: Settings) -> Settings:
    """Settings for --bootstrap/--registry when given, else for the local platform (started when down)."""
    from deploy import local

    return local.ensure(settings, bootstrap=args.bootstrap, registry_url=args.registry)


def connected(args: argparse.Namespace, settings: Settings) -> Clients:
    """Clients on the chosen (or local) platform, with the registry's topics and their schemas in place."""
    from streams.clients import Clients

    clients = Clients.connect(ensure_services(args, settings))
    clients.topics.ensure(clients.admin())
    clients.register_schemas()
    return clients


def _existing(names: list[str]) -> list[Path]:
    paths = [Path(n) for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise LiqbotError(f"capture not found: {', '.join(missing)} (the real data lives in ../shared/data)")
    return paths


def roundtrip(args: argparse.Namespace, settings: Settings) -> int:
    from streams.roundtrip import records_from_captures
    from streams.roundtrip import roundtrip as run_roundtrip

    captures = _existing(args.capture) if args.capture else list(DEFAULT_CAPTURES)
    clients = connected(args, settings)
    settings = clients.settings
    parsed = records_from_captures(captures)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(parsed.frames.items()))
    print(f"parsed {sum(parsed.frames.values())} frames from {len(captures)} captures ({kinds}) "
          f"into {len(parsed.records)} records")
    for error in parsed.errors:
        print(f"  parse error: {error}")
    results = run_roundtrip(parsed.records, clients.topics, clients.producer,
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


def replay_capture(args: argparse.Namespace, settings: Settings) -> int:
    from streams.capture_replay import DEFAULT_VENUES, replay_captures
    from streams.ingest import CountingSink, Ingestor

    paths = _existing(args.files)
    speed = None if args.speed == "max" else float(args.speed)
    venue = DEFAULT_VENUES[args.venue]
    if args.dry_run:
        ingestor = Ingestor(CountingSink())
        stats = replay_captures(paths, ingestor, venue=venue, speed=speed)
    else:
        from streams.ingest import KafkaSink

        clients = connected(args, settings)
        ingestor = Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters)
        stats = replay_captures(paths, ingestor, venue=venue, speed=speed)
        clients.producer.drain(60)
    for kind, count in sorted(stats.frames.items()):
        print(f"  frames {kind:<12} {count:>8}")
    for schema, count in sorted(stats.records.items()):
        print(f"  records {schema:<22} {count:>8}")
    print(f"  book gaps {stats.gaps}, deltas dropped until a snapshot {stats.dropped_deltas}, "
          f"repeated liquidation frames dropped {stats.repeated_frames}")
    print(json.dumps(stats.summary()))
    return 0


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    """`liqbot ingest` and `liqbot record`: a venue's live public stream into Kafka (and a capture file)."""
    import asyncio
    import signal

    from streams.capture import CaptureWriter
    from streams.ingest import Ingestor, KafkaSink
    from streams.live import LiveSession
    from streams.metrics import expose_error_series

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    clients = connected(args, settings)
    settings = clients.settings
    serve_metrics(args, "ingest")
    ingestor = Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters)
    venue = "binance-usdm" if args.venue == "binance" else f"bybit-{args.market}"
    expose_error_series(venue, [clients.topics.name(spec) for spec in clients.topics.specs])
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
        # the producer serves its delivery reports when it sends: a quiet feed must still count what Kafka took
        acks = loop.create_task(_serve_acks(clients))
        print(f"streaming {len(symbols)} symbols from {venue} into {settings.kafka.bootstrap_servers} (Ctrl-C stops)")
        await session.run(stop)
        acks.cancel()
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


async def _serve_acks(clients: Clients, every_s: float = 0.5) -> None:
    import asyncio

    while True:
        clients.producer.poll(0)
        await asyncio.sleep(every_s)


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


def import_trades(args: argparse.Namespace, settings: Settings) -> int:
    from streams.bybit.archive import read_trade_archive
    from streams.ingest import KafkaSink

    clients = connected(args, settings)
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
    clients.producer.drain(60)
    print(json.dumps({"files": len(args.files), "trades": imported, "errors": errors}))
    return 0
