"""`liqbot`: the one command-line door to every capability."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from liqbot import control_commands, history_commands, stream_commands
from liqbot.backtest_command import add_realism_arguments
from liqbot.config import Settings
from liqbot.data import REPO
from liqbot.errors import LiqbotError

__all__ = ["main"]

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

    clients = Clients.connect(stream_commands.ensure_services(args, settings))
    outcome = clients.topics.ensure(clients.admin())
    print(f"{'topic':<28} {'schema':<22} {'key':<7} {'retention':>10} {'cleanup':<8} state")
    for spec in clients.topics.specs:
        name = clients.topics.name(spec)
        retention = "forever" if spec.retention_ms < 0 else f"{spec.retention_ms / 86_400_000:g}d"
        print(f"{name:<28} {spec.schema:<22} {spec.key:<7} {retention:>10} {spec.cleanup_policy:<8} {outcome[name]}")
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
    from bench import NO_KAFKA, run_benchmark

    if args.name not in NO_KAFKA:
        settings = stream_commands.ensure_services(args, settings)
    return run_benchmark(args.name, args.rest, settings, Path(args.results_dir))


def _train(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from streams.capture_replay import DEFAULT_VENUES
    from training.dataset import DEFAULT_CAPTURES, Capture
    from training.registry import ModelRegistry
    from training.train import train, train_scenario

    if args.scenario:  # SYNTHETIC: its own registry (training/scenario_models) unless --models says otherwise
        if args.captures:
            raise LiqbotError("--scenario fits on the synthetic scenario alone: give no capture files with it")
        version, meta = train_scenario(ModelRegistry(Path(args.models)) if args.models else None)
        print(json.dumps({"version": version, "synthetic": True, "metrics": meta["metrics"]}))
        return 0

    missing = [f for f in args.captures if not Path(f).exists()]
    if missing:
        raise LiqbotError(f"capture not found: {', '.join(missing)} (the real data lives in ../shared/data)")
    captures = [Capture(Path(f), DEFAULT_VENUES[args.venue]) for f in args.captures] or list(DEFAULT_CAPTURES)
    version, meta = train(ModelRegistry(Path(args.models)) if args.models else ModelRegistry(), captures)
    print(json.dumps({"version": version, "metrics": meta["metrics"]}))
    return 0


def _agents(args: argparse.Namespace, settings: Settings) -> int:
    from agents.app import AgentOptions
    from agents.worker import run_worker
    from decision.paper import PaperConfig
    from liqbot.backtest_command import paper_config

    if args.live and paper_config(args) != PaperConfig():
        raise LiqbotError("--entry-latency, --cancel-latency, --latency-samples, --latency-seed and --queue-model "
                          "shape the paper venue: drop them with --live (Bybit's own latency and queue apply)")
    options = AgentOptions(data_dir=settings.broker.home / "agents", agents=tuple(args.agents.split(",")),
                           models_dir=Path(args.models) if args.models else None,
                           snapshot_every_s=args.snapshot_every, status_every_s=args.status_every,
                           model_refresh_s=args.model_refresh, live=_live_venue(args) if args.live else None,
                           paper=paper_config(args))
    settings = stream_commands.ensure_services(args, settings)
    stream_commands.serve_metrics(args, "agents")
    return run_worker(settings, options, loglevel="info" if args.verbose else "warning")


def _live_venue(args: argparse.Namespace) -> LiveVenue:
    """Bybit's private API with keys from the environment (read here, at the entry point, and nowhere else)."""
    from streams.bybit.private_rest import PrivateRestConfig
    from streams.bybit.private_venue import LiveVenue, LiveVenueConfig
    from streams.bybit.private_ws import PrivateStreamConfig
    from streams.bybit.signing import Credentials

    config = LiveVenueConfig(rest=PrivateRestConfig(base_url=args.live_rest_url),
                             stream=PrivateStreamConfig(url=args.live_ws_url))
    return LiveVenue(Credentials.from_env(os.environ), {}, config)


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
    _agent_commands(sub, remote)
    history_commands.add_commands(sub, remote)
    _lag_commands(sub, remote)
    control_commands.add_commands(sub, remote)
    _dev_commands(sub, remote)
    _training_commands(sub)
    return parser


if TYPE_CHECKING:
    from streams.bybit.private_venue import LiveVenue

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _platform_commands(sub: Subparsers, remote: argparse.ArgumentParser) -> None:
    kafka = sub.add_parser("kafka", help="the local Apache Kafka broker (KRaft, no Docker) and schema registry")
    kafka.add_argument("action", choices=["up", "down", "status"])
    kafka.add_argument("--port", type=int, default=9092,
                       help="Kafka port on 127.0.0.1; controller port+1, registry port+2, its management port+3")
    kafka.set_defaults(func=_kafka)

    topics = sub.add_parser("topics", parents=[remote], help="create the registry's topics (idempotent), list them")
    topics.set_defaults(func=_topics)


def _lag_commands(sub: Subparsers, remote: argparse.ArgumentParser) -> None:
    from liqbot import lag_commands

    lag_commands.add_commands(sub, remote)


def _stream_commands(sub: Subparsers, remote: argparse.ArgumentParser) -> None:
    rt = sub.add_parser("roundtrip", parents=[remote], help="real Bybit frames through Avro and Kafka and back")
    rt.add_argument("capture", nargs="*", help="capture files (default: the real ones in ../shared/data/bybit)")
    rt.set_defaults(func=stream_commands.roundtrip)

    rc = sub.add_parser("replay-capture", parents=[remote],
                        help="captured frames through the live parser and producer (or --dry-run: counts only)")
    rc.add_argument("files", nargs="+", help="captures: recorder JSON lines, raw frames, or '<time> <frame>' lines")
    rc.add_argument("--speed", default="max", help="1, 10, ... times the recorded pace, or max (default)")
    rc.add_argument("--venue", choices=["bybit", "binance"], default="bybit",
                    help="venue of lines that do not say it themselves")
    rc.add_argument("--dry-run", action="store_true", help="parse and check only; no Kafka")
    rc.set_defaults(func=stream_commands.replay_capture)

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

    metrics = stream_commands.metrics_options()
    ing = sub.add_parser("ingest", parents=[remote, live, metrics], help="the live public stream into Kafka")
    ing.set_defaults(func=stream_commands.ingest)
    rec = sub.add_parser("record", parents=[remote, live, metrics],
                         help="like ingest, and write every raw frame to a file")
    rec.add_argument("--out", required=True, help="capture file (zstandard JSON lines; replay-capture reads it)")
    rec.set_defaults(func=stream_commands.ingest)

    imp = sub.add_parser("import-trades", parents=[remote], help="Bybit's public daily trade archive (CSV) into Kafka")
    imp.add_argument("files", nargs="+", help="CSV files, plain or .gz")
    imp.add_argument("--market", choices=["linear", "spot"], default="linear")
    imp.set_defaults(func=stream_commands.import_trades)


def _agent_commands(sub: Subparsers, remote: argparse.ArgumentParser) -> None:
    from agents import AGENTS
    from agents.partitions import SNAPSHOT_EVERY_S

    agents = sub.add_parser("agents", parents=[remote, stream_commands.metrics_options()],
                            help="the agents: market topics to features, predictions and orders")
    agents.add_argument("action", choices=["worker"], help="worker: one worker of the group (run more to scale)")
    agents.add_argument("--models", help="model registry directory (default: training/models, committed)")
    agents.add_argument("--agents", default=",".join(AGENTS), metavar="NAMES",
                        help="which agents this worker runs, comma-separated (default: all four); workers running "
                             "the same set share a consumer group and split its partitions")
    agents.add_argument("--snapshot-every", type=float, default=SNAPSHOT_EVERY_S, metavar="SECONDS",
                        help="how often each partition's state is saved to its changelog; a restart reads at most "
                             "this much again (default: %(default)s)")
    agents.add_argument("--status-every", type=float, default=1.0, metavar="SECONDS",
                        help="how often the worker rewrites its status file (LIQBOT_HOME/agents/status.json)")
    agents.add_argument("--model-refresh", type=float, default=30.0, metavar="SECONDS",
                        help="how often the predict agent looks for a new CURRENT model (default: %(default)s)")
    agents.add_argument("--live", action="store_true",
                        help="send intents to Bybit (keys: LIQBOT_BYBIT_API_KEY, LIQBOT_BYBIT_API_SECRET); "
                             "default: the paper venue")
    agents.add_argument("--live-rest-url", default="https://api.bybit.com", help="with --live: Bybit's REST base")
    agents.add_argument("--live-ws-url", default="wss://stream.bybit.com/v5/private",
                        help="with --live: Bybit's private stream")
    add_realism_arguments(agents)  # the paper venue's, as `liqbot backtest` takes them (not with --live)
    agents.set_defaults(func=_agents)


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


def _training_commands(sub: Subparsers) -> None:
    train = sub.add_parser("train", help="fit the interim model on real captures, export ONNX, publish to the registry")
    train.add_argument("captures", nargs="*", help="capture files (default: the real Binance and Bybit captures)")
    train.add_argument("--venue", choices=["bybit", "binance"], default="bybit", help="venue of the given captures")
    train.add_argument("--models", help="model registry directory (default: training/models, committed; "
                                        "with --scenario: training/scenario_models)")
    train.add_argument("--scenario", choices=["wick"],
                       help="fit on the SYNTHETIC liquidation-wick scenario (training/scenario.py) instead, to "
                            "exercise the order path")
    train.set_defaults(func=_train)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # `liqbot test -q -x`: argparse's REMAINDER takes pytest's options only after a non-option, so the options it
    # does not know go to pytest too; any other command refuses them as before
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if unknown:
        args.rest = [*unknown, *(args.rest or [])]
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
