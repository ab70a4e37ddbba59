"""The history commands of `liqbot`: sink (Kafka to ClickHouse) and sql; pipeline and backtest in modules beside."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from liqbot import stream_commands
from liqbot.config import Settings
from liqbot.errors import LiqbotError

if TYPE_CHECKING:
    from streams.history.sink import SinkCounts
    from streams.history.store import StoreSettings

__all__ = ["add_commands", "sink", "sql", "store_options"]


def store_settings(args: argparse.Namespace, settings: Settings) -> StoreSettings:
    from streams.history.store import StoreSettings

    return StoreSettings(path=settings.broker.home / "clickhouse", url=args.clickhouse_url)


def _progress(counts: SinkCounts) -> None:
    tables = ", ".join(f"{t} {n:,}" for t, n in sorted(counts.rows.items()))
    waiting = f"; WAITING for {counts.waiting}" if counts.waiting else ""
    print(f"sink: {sum(counts.rows.values()):,} rows ({tables}); {counts.dead_letters} dead letters, "
          f"{counts.skipped} re-delivered rows skipped{waiting}", file=sys.stderr, flush=True)


def sink(args: argparse.Namespace, settings: Settings) -> int:
    from streams.history.query import QueryServer
    from streams.history.sink import SinkConfig, TableSink
    from streams.history.store import apply_migrations, connect

    clients = stream_commands.connected(args, settings)
    store = store_settings(args, settings)
    client = connect(store)
    applied = apply_migrations(client)
    print(f"sink: {store.where}; migrations applied now: {', '.join(applied) or 'none (up to date)'}",
          file=sys.stderr)
    stream_commands.serve_metrics(args, "sink")
    config = SinkConfig(group_id=args.group, instance_id=args.instance, batch_rows=args.batch_rows,
                        batch_ms=args.batch_ms, idle_exit_s=args.until_idle)
    table_sink = TableSink(clients.settings, clients.serde, client, clients.dead_letters, config)
    server = QueryServer(client, store, args.sql_port) if store.url is None else None
    if server is not None:
        print(f"sink: SQL on {server.start()} (`liqbot sql` finds it)", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: table_sink.stop.set())
    # chDB, pyarrow and the clients leave ~80,000 objects that live as long as the process: frozen, they are out of
    # every full collection, which otherwise took 40 ms each and a quarter of a core at 10,000 records/s
    gc.collect()
    gc.freeze()
    try:
        table_sink.run(on_progress=_progress)
    finally:
        if server is not None:
            server.stop()
    _progress(table_sink.counts)
    return 0


def sql(args: argparse.Namespace, settings: Settings) -> int:
    from streams.history.query import FORMATS, run_query

    if args.format == "parquet" and not args.out:
        raise LiqbotError("--format parquet writes a file: give --out FILE.parquet")
    fmt = FORMATS[args.format]
    out = run_query(store_settings(args, settings), args.query, fmt)
    if args.out:
        Path(args.out).write_bytes(out)
        print(f"wrote {len(out):,} bytes to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(out.decode())
    return 0


def store_options() -> argparse.ArgumentParser:
    """--clickhouse-url, for every command that reads or writes the history."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--clickhouse-url", metavar="URL",
                       help="a ClickHouse server, http(s)://user@host:8123/database (password from "
                            "LIQBOT_CLICKHOUSE_PASSWORD); default: embedded chDB in $LIQBOT_HOME/clickhouse")
    return where


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: argparse.ArgumentParser) -> None:
    from liqbot import backtest_command, pipeline_command, replay_command

    where = store_options()
    pipeline_command.add_command(sub, remote, where)
    replay_command.add_command(sub, remote, where)
    backtest_command.add_command(sub, where)
    snk = sub.add_parser("sink", parents=[remote, where, stream_commands.metrics_options()],
                         help="every topic into its ClickHouse table, exactly once (docs/history.md)")
    snk.add_argument("--group", default="liqbot-sink", help="consumer group (default: %(default)s)")
    snk.add_argument("--instance", default="sink-1",
                     help="static member id in the group: give each sink of one group its own (%(default)s)")
    snk.add_argument("--batch-rows", type=int, default=100_000, help="write when this many wait (%(default)s)")
    snk.add_argument("--batch-ms", type=int, default=200, help="or when the oldest waited this long (%(default)s)")
    snk.add_argument("--sql-port", type=int, default=0, help="SQL endpoint on 127.0.0.1 (default: a free port)")
    snk.add_argument("--until-idle", type=float, metavar="SECONDS",
                     help="stop once no record arrived for this long (default: run until stopped)")
    snk.set_defaults(func=sink)

    q = sub.add_parser("sql", parents=[where], help="run SQL on the history; works while the sink runs")
    q.add_argument("query", help='e.g. "SELECT symbol, count() FROM trades GROUP BY symbol"')
    q.add_argument("--format", choices=["table", "csv", "tsv", "json", "parquet"], default="table",
                   help="table (aligned, default), csv, tsv, json (one object per line) or parquet")
    q.add_argument("--out", metavar="FILE", help="write the result to FILE instead of printing it")
    q.set_defaults(func=sql)
