"""`liqbot backtest` as a user runs it, on the landed history: its summary, its results tables, and errors that say
what to do next. The wick scenario is SYNTHETIC (training/scenario.py) and so is its model (scenario_models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.kafka.broker import free_port
from streams.history.query import endpoint_file
from streams.history.store import StoreSettings, connect
from tests.streams.history.conftest import LandedHistory
from training.registry import SCENARIO_REGISTRY, ModelRegistry

WICK_ARGS = ("--from", "2026-01-01T01:00:00Z", "--to", "2026-01-01T01:16:00Z", "--symbols",
             "WICKUSDT,SPIKEUSDT,DIPUSDT", "--namespace", "wick.", "--models", str(SCENARIO_REGISTRY))


def _backtest(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQBOT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "liqbot.cli", "backtest", *args], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_a_backtest_prints_its_summary_and_writes_its_run(landed_history: LandedHistory) -> None:
    done = _backtest(landed_history.path.parent, *WICK_ARGS, "--run", "cli-wick", "--batch-rows", "2000")
    assert done.returncode == 0, done.stderr
    *text, last = done.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["run"] == "cli-wick" and figures["intents"] > 0 and figures["fills"] > 0
    assert figures["decision_points"] > figures["intents"] and figures["rows"]["trades"] > 1000
    summary = "\n".join(text)
    model = ModelRegistry(SCENARIO_REGISTRY).current()
    for shown in ("rows read: book_updates", "decision points", "intents", "fills", "PnL", "fees", "funding",
                  f"result hash {figures['result_hash']}", "events/s", f"model {model}"):
        assert shown in summary, shown
    client = connect(StoreSettings(path=landed_history.path))
    try:
        stored = client.query("SELECT result_hash, intents, fills, git_commit IS NOT NULL FROM backtest_runs "
                              "WHERE run = 'cli-wick'").result_rows
    finally:
        client.close()  # before the next `liqbot backtest` opens the store
    assert stored == [(figures["result_hash"], figures["intents"], figures["fills"], True)]
    again = _backtest(landed_history.path.parent, *WICK_ARGS, "--run", "cli-wick")
    assert again.returncode == 2 and "backtest run cli-wick exists already" in again.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--model", "feedfacefeedface"), "error: no model version feedfacefeedface in "),
    (("--from", "2020-01-01T00:00:00Z", "--to", "2020-01-02T00:00:00Z"),
     "error: no market records between 2020-01-01T00:00:00.000Z and 2020-01-02T00:00:00.000Z for WICKUSDT,SPIKEUSDT,"
     "DIPUSDT (the history holds WICKUSDT from 2026-01-01T01:00:00"),
    (("--symbols", "WICKUSDT,NOPEUSDT"), "error: unknown symbol NOPEUSDT: the history under the topic prefix 'wick.'"),
    (("--from", "yesterday"), "error: --from: not a time: 'yesterday' (give ISO 8601"),
])
def test_a_backtest_that_cannot_run_says_what_to_do(landed_history: LandedHistory, args: tuple[str, ...],
                                                    message: str) -> None:
    done = _backtest(landed_history.path.parent, *WICK_ARGS, *args)  # argparse: the later option wins
    assert done.returncode == 2 and message in done.stderr, done.stderr
    if "no market records" in message:
        assert "load history with `liqbot sink` or `liqbot pipeline`" in done.stderr


def test_an_unreachable_server_and_a_store_held_by_a_sink_say_what_to_do(landed_history: LandedHistory) -> None:
    port = free_port()
    done = _backtest(landed_history.path.parent, *WICK_ARGS, "--clickhouse-url", f"http://liqbot@127.0.0.1:{port}/bt")
    assert done.returncode == 2, done.stderr
    assert f"error: ClickHouse at http://liqbot@127.0.0.1:{port}/bt is not reachable" in done.stderr
    assert "start it, or point --clickhouse-url at a running server" in done.stderr
    held = endpoint_file(StoreSettings(path=landed_history.path))
    held.write_text(json.dumps({"pid": os.getpid(), "url": "http://127.0.0.1:1/"}))  # a live sink's file
    try:
        done = _backtest(landed_history.path.parent, *WICK_ARGS)
    finally:
        held.unlink()
    assert done.returncode == 2 and "a running `liqbot sink` holds the chDB store" in done.stderr, done.stderr
