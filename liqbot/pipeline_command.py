"""`liqbot pipeline`, the README's main job: the real captures through ingest, the agents worker and the sink into
ClickHouse, then a summary queried from ClickHouse."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from liqbot import stream_commands
from liqbot.children import SinkProcess, WorkerProcess
from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE, LIQUIDATION_FRAMES
from liqbot.errors import LiqbotError

if TYPE_CHECKING:
    from streams.history.store import StoreSettings

__all__ = ["add_command", "pipeline", "through_agents"]

CAPTURES = ((BYBIT_CAPTURE, "bybit-linear"), (LIQUIDATION_FRAMES, "bybit-linear"), (BINANCE_CAPTURE, "binance-usdm"))

# What the summary asks ClickHouse, on this run's topics only (`{run}`: the run's topic prefix).
SUMMARY = (
    ("rows per table", """
SELECT table, rows, partitions, min_offset, max_offset FROM (
{union}) ORDER BY table"""),
    ("market records per venue and symbol (top 15)", """
SELECT venue, symbol, countIf(kind = 'trade') AS trades, countIf(kind = 'liquidation') AS liquidations,
       countIf(kind = 'book') AS book_updates, countIf(kind = 'top') AS top_of_book
FROM (SELECT venue, symbol, 'trade' AS kind FROM trades WHERE _topic LIKE '{run}%'
      UNION ALL SELECT venue, symbol, 'liquidation' FROM liquidations WHERE _topic LIKE '{run}%'
      UNION ALL SELECT venue, symbol, 'book' FROM book_updates WHERE _topic LIKE '{run}%'
      UNION ALL SELECT venue, symbol, 'top' FROM top_of_book WHERE _topic LIKE '{run}%')
GROUP BY venue, symbol ORDER BY trades + liquidations + book_updates + top_of_book DESC, venue, symbol LIMIT 15"""),
    ("feature vectors and predictions", """
SELECT f.venue AS venue, f.symbol AS symbol, f.vectors AS vectors, p.predictions AS predictions,
       p.model_version AS model, round(p.mean_fill_probability, 4) AS mean_p_fill
FROM (SELECT venue, symbol, count() AS vectors FROM feature_vectors WHERE _topic LIKE '{run}%'
      GROUP BY venue, symbol) AS f
LEFT JOIN (SELECT venue, symbol, count() AS predictions, any(model_version) AS model_version,
                  avg(arrayAvg(arms.fill_probability)) AS mean_fill_probability
           FROM predictions WHERE _topic LIKE '{run}%' GROUP BY venue, symbol) AS p USING (venue, symbol)
ORDER BY vectors DESC, venue, symbol SETTINGS join_use_nulls = 1"""),
    ("orders and fills", """
SELECT * FROM (
    SELECT 'intents' AS what, count() AS n FROM order_intents WHERE _topic LIKE '{run}%'
    UNION ALL SELECT concat('order events ', status), count() FROM order_events WHERE _topic LIKE '{run}%'
    GROUP BY status
    UNION ALL SELECT 'positions', count() FROM positions WHERE _topic LIKE '{run}%'
) ORDER BY what"""),
    ("dead letters", """
SELECT source, stage, error_type, count() AS n, any(substring(error, 1, 100)) AS example
FROM dead_letters WHERE _topic LIKE '{run}%' GROUP BY source, stage, error_type ORDER BY n DESC"""),
)


def _union(tables: list[str], run: str) -> str:
    return "\nUNION ALL ".join(
        f"SELECT '{t}' AS table, count() AS rows, uniqExact(_partition) AS partitions, min(_offset) AS min_offset, "
        f"max(_offset) AS max_offset FROM {t} WHERE _topic LIKE '{run}%'" for t in tables)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _ingest(settings: Settings) -> int:
    """The real captures through the live parser, book checks and producer, as `replay-capture` does; the records."""
    from streams.capture_replay import replay_captures
    from streams.clients import Clients
    from streams.ingest import Ingestor, KafkaSink

    clients = Clients.connect(settings)
    records = 0
    for path, venue in CAPTURES:
        if not path.exists():
            raise LiqbotError(f"capture not found: {path} (the real data lives in ../shared/data)")
        ingestor = Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters)
        stats = replay_captures([path], ingestor, venue=venue, say=_say)
        clients.producer.drain(120)
        _say(f"pipeline: ingested {path.name}: {sum(stats.records.values()):,} records "
             f"from {sum(stats.frames.values()):,} frames")
        records += sum(stats.records.values())
    return records


def _settle(probe: Callable[[], object], quiet_s: float, timeout_s: float, what: str,
            alive: Callable[[], str | None]) -> None:
    """Waits until `probe` gives the same answer for `quiet_s` (the pipeline has drained); says what moves."""
    deadline, last, since, said = time.monotonic() + timeout_s, probe(), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if (dead := alive()) is not None:
            raise LiqbotError(dead)
        if time.monotonic() > deadline:
            raise LiqbotError(f"the pipeline did not settle within {timeout_s:.0f} s: {what} ({last})")
        time.sleep(0.5)
        now = probe()
        if now != last:
            last, since = now, time.monotonic()
        if time.monotonic() - said >= 10:
            _say(f"  {last}")
            said = time.monotonic()


def pipeline(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    run = args.run or time.strftime("run-%Y%m%d-%H%M%S", time.gmtime())
    run = run if run.endswith(".") else f"{run}."
    settings = stream_commands.ensure_services(args, settings)
    settings = stream_commands.connected(args, replace(settings, kafka=replace(settings.kafka, topic_prefix=run))
                                         ).settings
    total, summary = through_agents(args, settings, _ingest,
                                    "the real captures through ingest, the agents worker and the sink")
    summary = {"run": summary.pop("run"), "market_records_ingested": total, **summary}
    if summary["market_rows_in_clickhouse"] != total:
        print(json.dumps(summary))
        raise LiqbotError(f"ClickHouse holds {summary['market_rows_in_clickhouse']:,} market rows of the {total:,} "
                          f"ingested; the sink's log: {settings.broker.home / 'sink.log'}")
    summary["backtest"] = _backtest(args, settings, run)
    print(json.dumps(summary))
    return 0


def _backtest(args: argparse.Namespace, settings: Settings, run: str) -> dict[str, object]:
    """The run's history, now in ClickHouse, through `liqbot backtest` (the sink has stopped: chDB is free)."""
    from liqbot.backtest_command import run_backtest
    from liqbot.history_commands import store_settings
    from streams.history.query import run_query
    from streams.history.reader import HistoryRange

    store = store_settings(args, settings)
    # the symbols that traded (the listings name every symbol of the venue)
    market = " UNION ALL ".join(f"SELECT symbol, ts_event_ns FROM {t} WHERE _topic LIKE '{run}%'"
                                for t in ("trades", "liquidations", "top_of_book"))
    first, last, symbols = run_query(store, f"SELECT toUnixTimestamp64Nano(min(ts_event_ns)), "
                                            f"toUnixTimestamp64Nano(max(ts_event_ns)), arrayStringConcat("
                                            f"arraySort(groupUniqArray(symbol)), ',') FROM ({market})",
                                     "TSV").decode().split()
    span = HistoryRange(namespace=run, from_ns=int(first), to_ns=int(last) + 1, symbols=tuple(symbols.split(",")))
    print(f"\n== backtest of the same history (liqbot backtest --namespace {run} --symbols {symbols})")
    report = settings.broker.home / "pipeline" / run.rstrip(".") / "backtest.html"
    figures = run_backtest(store, span, models=args.models, run=f"{run.rstrip('.')}-backtest", report=report)
    print(f"report: {report} (and {report.with_suffix('.png')})")
    return {**figures, "report": str(report)}


def through_agents(args: argparse.Namespace, settings: Settings, feed: Callable[[Settings], int],
                   what: str, *, feed_first: bool = False) -> tuple[int, dict[str, object]]:
    """An agents worker and a sink on `settings`' namespace while `feed` fills its market topics (or, with
    `feed_first`, after it has), until nothing moves; the records fed and the summary queried from ClickHouse."""
    from liqbot.backtest_command import realism_argv
    from streams.history.store import StoreSettings

    run = settings.kafka.topic_prefix
    store = StoreSettings(path=settings.broker.home / "clickhouse", url=args.clickhouse_url)
    _say(f"{args.command}: run {run.rstrip('.')}: topics {run}*, ClickHouse {store.where}")
    sink_options = ["--clickhouse-url", args.clickhouse_url] if args.clickhouse_url else []
    work = settings.broker.home / args.command / run.rstrip(".")
    fed = feed(settings) if feed_first else 0
    with SinkProcess(settings, settings.broker.home, *sink_options) as sink, \
            WorkerProcess(settings, work, *(["--models", args.models] if args.models else []),
                          *realism_argv(args)) as worker:
        total = _live_path(settings, store, sink, worker, None if feed_first else feed, fed=fed)
        return total, _summary(settings, store, run, what)


def _live_path(settings: Settings, store: StoreSettings, sink: SinkProcess, worker: WorkerProcess,
               feed: Callable[[Settings], int] | None, *, fed: int = 0) -> int:
    """Feeds the market topics with the sink and the worker running (`feed` None: `fed` records were in them
    before), until nothing moves; the records fed."""
    from streams.history.query import run_query

    run = settings.kafka.topic_prefix

    def alive() -> str | None:
        for name, child in (("sink", sink), ("agents worker", worker)):
            if child.process.poll() is not None:
                return f"the {name} stopped (exit code {child.process.poll()}); its log:\n{child.tail()}"
        return None

    def drained() -> object:
        rows = run_query(store, f"SELECT sum(rows) FROM ({_union(_tables(settings), run)})", "TSV")
        applied = ", ".join(f"{k} {v:,}" for k, v in sorted(worker.status()["applied"].items()))
        return f"worker applied: {applied}; ClickHouse rows: {int(rows.decode()):,}"

    _wait_for_sql(store, sink, alive)  # before any query here: it would take chDB's lock from the sink
    worker.wait_for_partitions(settings.kafka.partitions)
    total = feed(settings) if feed is not None else fed
    _say(f"{total:,} market records in Kafka; waiting for the worker and the sink to drain them")
    _settle(drained, quiet_s=6.0, timeout_s=1800.0, what="still moving", alive=alive)
    return total


def _tables(settings: Settings, market_only: bool = False) -> list[str]:
    from streams.topics import TopicRegistry

    specs = TopicRegistry(settings.kafka).specs
    return sorted({s.table for s in specs if not market_only or s.name.startswith("market.")})


def _summary(settings: Settings, store: StoreSettings, run: str, what: str) -> dict[str, object]:
    """Prints the summary tables, all from ClickHouse; the figures of the last line."""
    from streams.history.query import FORMATS, run_query

    print(f"\nliqbot, run {run.rstrip('.')}: {what}; every figure below is queried from ClickHouse "
          f"({store.where})\n")
    for title, sql in SUMMARY:
        print(f"== {title}")
        text = sql.format(run=run, union=_union(_tables(settings), run))
        print(run_query(store, text, FORMATS["table"]).decode() or "(none)\n")
    lines = run_query(store, f"SELECT table, rows FROM ({_union(_tables(settings), run)})", "TSV").decode()
    rows = {table: int(n) for table, n in (line.split("\t") for line in lines.splitlines())}
    market = sum(rows[t] for t in _tables(settings, market_only=True))
    shown = ("trades", "liquidations", "feature_vectors", "predictions", "order_intents", "dead_letters")
    return {"run": run.rstrip("."), "market_rows_in_clickhouse": market, **{t: rows[t] for t in shown},
            "store": store.where}


def _wait_for_sql(store: StoreSettings, sink: SinkProcess, alive: Callable[[], str | None],
                  timeout_s: float = 120.0) -> None:
    """Until this run's sink serves SQL (the summary goes through it); a killed sink's file may be left behind."""
    deadline = time.monotonic() + timeout_s
    while store.url is None and _serving(store) != sink.process.pid:
        if (dead := alive()) is not None or time.monotonic() > deadline:
            raise LiqbotError(dead or f"the sink did not start serving SQL; its log:\n{sink.tail()}")
        time.sleep(0.2)


def _serving(store: StoreSettings) -> int | None:
    from streams.history.query import endpoint

    found = endpoint(store)
    return None if found is None else found[0]


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: argparse.ArgumentParser,
                where: argparse.ArgumentParser) -> None:
    p = sub.add_parser("pipeline", parents=[remote, where],
                       help="the main job: real captures -> Kafka -> agents -> ClickHouse, and a summary from it")
    p.add_argument("--run", help="the run's name, its topics' prefix (default: run-<UTC time>)")
    p.add_argument("--models", help="the model registry the worker serves from (default: training/models)")
    p.set_defaults(func=pipeline)

