"""`liqbot backtest`: the market history in ClickHouse through the live agents' steps, its results back beside it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from liqbot.config import Settings
from liqbot.errors import LiqbotError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from decision.latency import LatencyModel
    from decision.paper import PaperConfig
    from streams.history.backtest import Progress, Replay
    from streams.history.reader import HistoryRange
    from streams.history.results import Manifest
    from streams.history.store import StoreSettings

__all__ = ["add_command", "add_realism_arguments", "backtest", "paper_config", "parse_time", "run_backtest"]


def parse_time(text: str, option: str) -> int:
    """A command-line time (`liqbot.times`: ISO 8601, UTC unless it says otherwise, or epoch ms) in epoch ns."""
    from liqbot.times import parse_time_ms

    try:
        return parse_time_ms(text) * 1_000_000
    except ValueError as exc:
        raise LiqbotError(f"{option}: {exc}") from None


def _latency(text: str | None, samples: LatencyModel | None, option: str) -> LatencyModel | None:
    from decision.latency import parse_latency

    if text is None:
        return samples
    try:
        return parse_latency(text)
    except ValueError as exc:
        raise LiqbotError(f"{option}: {exc}") from None


def _samples(path: Path | None) -> LatencyModel | None:
    from decision.latency import parse_samples

    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise LiqbotError(f"--latency-samples: cannot read {path} ({exc.strerror}): give a file of measured "
                          "order-ack latencies, one number of ms a line") from None
    try:
        return parse_samples(text, str(path))
    except ValueError as exc:
        raise LiqbotError(f"--latency-samples: {exc}") from None


def add_realism_arguments(parser: argparse.ArgumentParser) -> None:
    """The paper venue's latency and queue flags (`paper_config` reads them): for backtests and paper workers."""
    latency = ("MS, constant:MS, uniform:LOW_MS:HIGH_MS or lognormal:MEDIAN_MS:SIGMA; each draw keyed by the id, "
               "deterministic (default 0: none)")
    parser.add_argument("--entry-latency", metavar="LATENCY", help=f"decision to order at the venue: {latency}")
    parser.add_argument("--cancel-latency", metavar="LATENCY", help=f"cancel request to its effect: {latency}")
    parser.add_argument("--latency-samples", type=Path, metavar="FILE",
                        help="measured order-ack latencies, one number of ms a line: entry and cancel latencies drawn "
                             "from them (unless --entry-latency / --cancel-latency say otherwise)")
    parser.add_argument("--latency-seed", type=int, default=0, help="another seed, other latency draws (%(default)s)")
    parser.add_argument("--queue-model", default="none", metavar="MODEL",
                        help="fills at the limit price from the queue ahead in the recorded book: none (default: only "
                             "trades through the price fill), risk_averse, log_prob or power_prob:N")


def realism_argv(args: argparse.Namespace) -> list[str]:
    """The realism flags `args` sets away from their defaults, as a command line: for a paper worker this starts."""
    probe = argparse.ArgumentParser(add_help=False)
    add_realism_arguments(probe)
    return [part for dest, default in vars(probe.parse_args([])).items()
            if (value := getattr(args, dest, default)) not in (None, default)
            for part in ("--" + dest.replace("_", "-"), str(value))]  # each flag is its dest's name


def paper_config(args: argparse.Namespace) -> PaperConfig:
    """The paper venue's realism from the command line (docs/backtest.md, Realism); errors say what to write."""
    from decision.paper import PaperConfig
    from decision.queue import parse_queue

    samples = _samples(args.latency_samples)
    entry = _latency(args.entry_latency, samples, "--entry-latency")
    cancel = _latency(args.cancel_latency, samples, "--cancel-latency")
    try:
        queue = parse_queue(args.queue_model)
    except ValueError as exc:
        raise LiqbotError(f"--queue-model: {exc}") from None
    default = PaperConfig()
    return PaperConfig(entry_latency=entry or default.entry_latency, cancel_latency=cancel or default.cancel_latency,
                       latency_seed=args.latency_seed, queue=queue)


def _open(store: StoreSettings) -> Client:
    """The store, migrated; a store that cannot be opened says what to do."""
    from clickhouse_connect.driver.exceptions import OperationalError

    from streams.history.query import running_sink
    from streams.history.store import PASSWORD_ENV, apply_migrations, connect

    if store.url is None and running_sink(store) is not None:
        raise LiqbotError(f"a running `liqbot sink` holds the chDB store {store.path} (chDB opens a directory in one "
                          "process): stop it first, or backtest against a ClickHouse server with --clickhouse-url")
    try:
        client = connect(store)
    except OperationalError as exc:
        raise LiqbotError(f"{store.where} is not reachable ({str(exc).split(' (Caused by')[0][:200]}): start it, or "
                          f"point --clickhouse-url at a running server (password from {PASSWORD_ENV})") from None
    apply_migrations(client)
    return client


def _say_progress(progress: Progress) -> None:
    from streams.history.reader import iso

    print(f"backtest: {progress.records:,} of {progress.total:,} records ({progress.records / progress.total:.0%}), "
          f"event time {iso(progress.ts_event_ns)}, {progress.intents:,} intents, "
          f"{progress.records / progress.wall_s:,.0f} records/s", file=sys.stderr, flush=True)


def backtest(args: argparse.Namespace, settings: Settings) -> int:
    from liqbot.history_commands import store_settings
    from streams.history.reader import HistoryRange

    span = HistoryRange(namespace=settings.kafka.topic_prefix if args.namespace is None else args.namespace,
                        from_ns=parse_time(args.from_time, "--from"), to_ns=parse_time(args.to_time, "--to"),
                        symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()))
    if args.batch_rows < 1:
        raise LiqbotError("--batch-rows must be at least 1")
    paper = paper_config(args)
    run_backtest(store_settings(args, settings), span, models=args.models, model=args.model, run=args.run,
                 batch_rows=args.batch_rows, report=args.report, paper=paper)
    return 0


def run_backtest(store: StoreSettings, span: HistoryRange, *, models: str | None = None, model: str | None = None,
                 run: str | None = None, batch_rows: int = 100_000, report: Path | None = None,
                 paper: PaperConfig | None = None) -> dict[str, object]:
    """Replays `span` from the store, writes the run beside the history (and `report`, an HTML file with a PNG
    beside it, when given), prints the summary; its last line."""
    from decision.paper import PaperConfig
    from streams.history.backtest import BacktestConfig, replay
    from streams.history.results import ensure_new, manifest_of, write_run
    from training.registry import ModelRegistry
    from training.serving import ServedModel

    registry = ModelRegistry(Path(models)) if models else ModelRegistry()
    served = ServedModel(registry, pinned=model)  # an unknown version stops here, before any reading
    client = _open(store)
    run = run or time.strftime("bt-%Y%m%d-%H%M%S", time.gmtime())
    ensure_new(client, run)
    print(f"backtest {run}: {store.where}, topic prefix '{span.namespace}', model {served.version}",
          file=sys.stderr, flush=True)
    config = BacktestConfig(span=span, batch_rows=batch_rows, paper=paper or PaperConfig())
    shaping = config.paper.shaping()
    realism = [f"{name} {getattr(config.paper, name)}" for name in ("entry_latency", "cancel_latency", "latency_seed",
                                                                    "queue") if name in shaping]
    print(f"backtest {run}: paper venue {', '.join(realism) or 'as by default (no latency, strict print-through)'}",
          file=sys.stderr, flush=True)
    result = replay(client, config, served, on_progress=_say_progress)
    manifest = manifest_of(run, result)
    write_run(client, manifest, result)
    if report is not None:
        from streams.history.report import write_report

        written = write_report(report, manifest, result, synthetic_model=bool(registry.meta(served.version).get(
            "synthetic")))
        print("backtest report: " + ", ".join(map(str, written)), file=sys.stderr, flush=True)
    return _summary(manifest, result, store)


def _summary(manifest: Manifest, result: Replay, store: StoreSettings) -> dict[str, object]:
    from streams.history.reader import iso

    out = result.outputs
    statuses: dict[str, int] = {}
    for _, event in out.events:
        statuses[event.status] = statuses.get(event.status, 0) + 1
    rate = result.records / max(result.wall_s, 1e-9)
    print(f"\nliqbot backtest {manifest.run}: {iso(manifest.from_ns)} to {iso(manifest.to_ns)}, "
          f"{','.join(manifest.symbols)}, topic prefix '{manifest.namespace}', model {manifest.model_version}, "
          f"{store.where}")
    print("rows read: " + ", ".join(f"{t} {n:,}" for t, n in result.rows.items())
          + f" ({sum(result.batches.values())} reads)")
    print(f"decision points {len(out.vectors):,}, predictions {len(out.predictions):,}, intents "
          f"{len(out.intents):,}, cancels {len(out.cancels):,}, order events {len(out.events):,} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items())) or 'none'}), fills {len(out.fills):,}")
    print(f"PnL {result.net_pnl:,.2f} net = {result.realised_pnl:,.2f} realised - fees {result.fees:,.2f} - funding "
          f"{result.funding:,.2f} + open positions, quote units ({len(result.outputs.equity):,} equity points)")
    print(f"input hash {manifest.input_hash}, result hash {result.result_hash}, config {manifest.config_hash}, "
          f"code {manifest.code_version} ({manifest.git_commit or 'no git checkout'})")
    print(f"{result.records:,} records in {result.wall_s:.2f} s: {rate:,.0f} events/s; results in backtest_* tables "
          f"(_run = '{manifest.run}')")
    figures: dict[str, object] = {
        "run": manifest.run, "rows": result.rows, "decision_points": len(out.vectors), "intents": len(out.intents),
        "order_events": len(out.events), "fills": len(out.fills), "net_pnl": round(result.net_pnl, 6),
        "fees": round(result.fees, 6), "funding": round(result.funding, 6), "result_hash": result.result_hash,
        "input_hash": manifest.input_hash, "wall_s": round(result.wall_s, 3), "events_per_s": round(rate)}
    print(json.dumps(figures))
    return figures


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], where: argparse.ArgumentParser) -> None:
    bt = sub.add_parser("backtest", parents=[where],
                        help="replay the history in ClickHouse through the live agents' steps (docs/backtest.md)")
    bt.add_argument("--from", dest="from_time", required=True, metavar="TIME",
                    help="first event time: ISO 8601 (UTC unless it says otherwise) or epoch ms")
    bt.add_argument("--to", dest="to_time", required=True, metavar="TIME", help="end of the range (exclusive)")
    bt.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    bt.add_argument("--model", metavar="VERSION", help="the model version to score with (default: the registry's "
                                                       "CURRENT)")
    bt.add_argument("--models", help="model registry directory (default: training/models, committed)")
    bt.add_argument("--run", help="the run's name in the results tables (default: bt-<UTC time>)")
    bt.add_argument("--namespace", metavar="PREFIX",
                    help="the topic prefix the history came through (default: LIQBOT_TOPIC_PREFIX, the live topics; "
                         "a `liqbot pipeline` run's is 'run-<time>.')")
    bt.add_argument("--batch-rows", type=int, default=100_000,
                    help="rows per ClickHouse read and table partition; bounds memory (%(default)s)")
    bt.add_argument("--report", type=Path, metavar="OUT.html",
                    help="write an HTML report of the run there, and its equity curve as OUT.png beside it")
    add_realism_arguments(bt)
    bt.set_defaults(func=backtest)
