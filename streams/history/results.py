"""A backtest's manifest and results in ClickHouse (migrations/0004_backtests.sql), written once per run.

Result rows go through the sink's own decoder (Avro body to Arrow columns, `streams/history/arrow.py`), so a result
table holds a record exactly as a topic's table would; reading them back gives the records again (`run_records`).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from clickhouse_connect.driver.client import Client

import liqbot
from liqbot.data import REPO
from liqbot.errors import LiqbotError
from schemas import load_all
from schemas.records import AvroRecord
from streams.avro import encode_body
from streams.history.arrow import decode_batch
from streams.history.backtest import Replay
from streams.history.columns import columns_for
from streams.history.reader import records_of

__all__ = ["RESULT_TABLES", "Manifest", "code_version", "ensure_new", "manifest_of", "run_records", "write_run"]

# schema -> the table of a run's records of it
RESULT_TABLES = {"liqbot.OrderIntent": "backtest_intents", "liqbot.OrderEvent": "backtest_order_events",
                 "liqbot.Position": "backtest_positions"}


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What a run read and with what: two runs of one manifest give one result hash."""

    run: str
    namespace: str
    from_ns: int
    to_ns: int
    symbols: tuple[str, ...]
    model_version: str
    config_hash: str
    code_version: str  # liqbot.__version__
    git_commit: str | None  # `git describe --always --dirty` of the checkout, when it is one
    input_rows: dict[str, int]
    input_hash: str


def code_version() -> tuple[str, str | None]:
    """liqbot's version and the checkout's commit (with -dirty when it has changes); None outside a checkout."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                                   text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    return liqbot.__version__, described or None


def manifest_of(run: str, replay: Replay) -> Manifest:
    span = replay.config.span
    version, commit = code_version()
    return Manifest(run=run, namespace=span.namespace, from_ns=span.from_ns, to_ns=span.to_ns, symbols=span.symbols,
                    model_version=replay.model_version, config_hash=replay.config.config_hash(),
                    code_version=version, git_commit=commit, input_rows=replay.rows, input_hash=replay.input_hash)


def ensure_new(client: Client, run: str) -> None:
    """A run is written once: a name already used is refused before any work."""
    found = client.query("SELECT count() FROM backtest_runs WHERE run = {run:String}", parameters={"run": run})
    if found.result_rows[0][0]:
        raise LiqbotError(f"backtest run {run} exists already (runs are never rewritten): choose another --run")


def write_run(client: Client, manifest: Manifest, replay: Replay) -> None:
    """The run's results, then its manifest row last: a run in backtest_runs has all of its rows."""
    out = replay.outputs
    for schema, rows in (("liqbot.OrderIntent", out.intents), ("liqbot.OrderEvent", out.events),
                         ("liqbot.Position", out.positions)):
        if rows:
            _insert_records(client, RESULT_TABLES[schema], schema, manifest.run, rows)
    if out.equity:
        n = len(out.equity)
        client.insert_arrow("backtest_equity", pa.table({
            "_run": pa.array([manifest.run] * n), "_seq": pa.array(range(n), pa.uint64()),
            "ts_event_ns": pa.array([p.ts_event_ns for p in out.equity], pa.timestamp("ns", tz="UTC")),
            "_partition": pa.array([p.partition for p in out.equity], pa.int32()),
            "venue": pa.array([p.venue for p in out.equity]), "symbol": pa.array([p.symbol for p in out.equity]),
            "account_equity": pa.array([p.account_equity for p in out.equity], pa.float64()),
            "net_pnl": pa.array([p.net_pnl for p in out.equity], pa.float64())}))
    client.insert_arrow("backtest_runs", _run_row(manifest, replay))


def _insert_records(client: Client, table: str, schema: str, run: str, rows: Sequence[tuple[int, AvroRecord]]) -> None:
    writer = load_all()[schema]
    decoded = decode_batch(writer, [encode_body(writer, record.to_avro()) for _, record in rows], 0)
    if decoded.bad:  # the steps made a record the history cannot hold: a bug, never to be dropped quietly
        raise LiqbotError(f"{table}: row {decoded.bad[0][0]} cannot be stored: {decoded.bad[0][1]}")
    names = [c.name for c in columns_for(schema)]
    extra = [pa.array([run] * len(rows)), pa.array([p for p, _ in rows], pa.int32()),
             pa.array(range(len(rows)), pa.uint64())]
    client.insert_arrow(table, pa.Table.from_arrays(decoded.columns + extra, names=[*names, "_run", "_partition",
                                                                                   "_seq"]))


def _run_row(manifest: Manifest, replay: Replay) -> pa.Table:
    out = replay.outputs
    ns = pa.timestamp("ns", tz="UTC")
    row = {
        "run": pa.array([manifest.run]), "created_ns": pa.array([time.time_ns()], ns),
        "namespace": pa.array([manifest.namespace]), "from_ns": pa.array([manifest.from_ns], ns),
        "to_ns": pa.array([manifest.to_ns], ns), "symbols": pa.array([list(manifest.symbols)]),
        "model_version": pa.array([manifest.model_version]), "config_hash": pa.array([manifest.config_hash]),
        "code_version": pa.array([manifest.code_version]), "git_commit": pa.array([manifest.git_commit], pa.string()),
        "input_rows": pa.array([list(manifest.input_rows.items())], pa.map_(pa.string(), pa.uint64())),
        "input_hash": pa.array([manifest.input_hash]), "result_hash": pa.array([replay.result_hash]),
        "decision_points": pa.array([len(out.vectors)], pa.uint64()),
        "predictions": pa.array([len(out.predictions)], pa.uint64()),
        "intents": pa.array([len(out.intents)], pa.uint64()), "cancels": pa.array([len(out.cancels)], pa.uint64()),
        "order_events": pa.array([len(out.events)], pa.uint64()), "fills": pa.array([len(out.fills)], pa.uint64()),
        "realised_pnl": pa.array([replay.realised_pnl]), "fees": pa.array([replay.fees]),
        "funding": pa.array([replay.funding]), "net_pnl": pa.array([replay.net_pnl]),
        "wall_s": pa.array([replay.wall_s]), "events_per_s": pa.array([replay.records / max(replay.wall_s, 1e-9)]),
    }
    return pa.table(row)


def run_records(client: Client, run: str, schema: str) -> list[AvroRecord]:
    """A stored run's records of `schema`, in the order the run made them."""
    names = ", ".join(f"`{c.name}`" for c in columns_for(schema))
    table = client.query_arrow(f"SELECT {names} FROM {{table:Identifier}} WHERE _run = {{run:String}} ORDER BY _seq",
                               parameters={"table": RESULT_TABLES[schema], "run": run})
    return records_of(table, schema)
