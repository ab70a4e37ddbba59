"""`liqbot backtest` as a user runs it, on the landed history: its summary, its results tables, and errors that say
what to do next. The wick scenario is SYNTHETIC (training/scenario.py) and so is its model (scenario_models)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from decision.latency import LognormalLatency, RecordedLatency
from decision.paper import PaperConfig
from decision.queue import QueueModel
from deploy.kafka.broker import free_port
from liqbot.backtest_command import add_realism_arguments, realism_argv
from streams.history.backtest import BacktestConfig
from streams.history.query import endpoint_file
from streams.history.reader import HistoryRange
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


def test_a_backtest_with_latency_and_a_queue_model_names_them_in_its_config_hash(landed_history: LandedHistory,
                                                                                   tmp_path: Path) -> None:
    """SYNTHETIC scenario; the ack latencies are hand-made numbers of ms."""
    samples = tmp_path / "acks.txt"
    samples.write_text("# order-ack latencies, ms\n4.0\n6.5\n12.0\n")
    done = _backtest(landed_history.path.parent, *WICK_ARGS, "--run", "cli-realistic", "--latency-samples",
                     str(samples), "--cancel-latency", "lognormal:50:0.5", "--queue-model", "power_prob:2")
    assert done.returncode == 0, done.stderr
    assert "paper venue entry_latency RecordedLatency(samples_ms=(4.0, 6.5, 12.0)" in done.stderr
    expected = PaperConfig(entry_latency=RecordedLatency(samples_ms=(4.0, 6.5, 12.0), source=str(samples)),
                           cancel_latency=LognormalLatency(median_ms=50.0, sigma=0.5),
                           queue=QueueModel(kind="power_prob", power=2.0))
    span = HistoryRange(namespace="wick.", from_ns=0, to_ns=1, symbols=("WICKUSDT",))  # the hash names no data
    client = connect(StoreSettings(path=landed_history.path))
    try:
        stored = client.query("SELECT config_hash FROM backtest_runs WHERE run = 'cli-realistic'").result_rows
    finally:
        client.close()
    assert stored == [(BacktestConfig(span=span, paper=expected).config_hash(),)]
    assert stored[0][0] != BacktestConfig(span=span).config_hash()


@pytest.mark.parametrize(("args", "message"), [
    (("--entry-latency", "fast"), "error: --entry-latency: latency 'fast' is not one of MS, constant:MS, "
                                  "uniform:LOW_MS:HIGH_MS or lognormal:MEDIAN_MS:SIGMA (e.g. 5, uniform:2:8, "
                                  "lognormal:5:0.5)"),
    (("--cancel-latency", "uniform:8:2"), "error: --cancel-latency: latency 'uniform:8:2': uniform latency: HIGH_MS "
                                          "2.0 is below LOW_MS 8.0"),
    (("--queue-model", "fifo"), "error: --queue-model: queue model 'fifo' is not one of none, risk_averse, log_prob "
                                "or power_prob:N (N > 0, e.g. power_prob:2)"),
    (("--queue-model", "power_prob"), "error: --queue-model: queue model 'power_prob': power_prob needs its N"),
    (("--latency-samples", "/nonexistent/acks.txt"), "error: --latency-samples: cannot read /nonexistent/acks.txt "
                                                     "(No such file or directory): give a file of measured order-ack "
                                                     "latencies, one number of ms a line"),
])
def test_bad_realism_settings_say_what_to_write(landed_history: LandedHistory, args: tuple[str, ...],
                                                message: str) -> None:
    done = _backtest(landed_history.path.parent, *WICK_ARGS, *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_bad_recorded_latencies_say_where(landed_history: LandedHistory, tmp_path: Path) -> None:
    samples = tmp_path / "acks.txt"
    samples.write_text("4.0\n4,5\n")
    done = _backtest(landed_history.path.parent, *WICK_ARGS, "--latency-samples", str(samples))
    assert done.returncode == 2, done.stderr
    assert f"error: --latency-samples: {samples}:2: '4,5' is not a number of ms (write one latency in ms a line)" \
        in done.stderr


@pytest.mark.parametrize("argv", [
    (),
    ("--entry-latency", "lognormal:4:0.5", "--cancel-latency", "3", "--latency-seed", "5", "--queue-model", "log_prob"),
    ("--latency-samples", "/tmp/acks.txt", "--queue-model", "power_prob:2"),
])
def test_the_realism_flags_given_to_a_worker_parse_back_to_the_same_settings(argv: tuple[str, ...]) -> None:
    """`liqbot replay` hands its realism flags to its paper worker as `realism_argv` writes them: every flag
    survives, and defaults are left off."""
    parser = argparse.ArgumentParser()
    add_realism_arguments(parser)
    given = parser.parse_args(argv)
    forwarded = realism_argv(given)
    assert parser.parse_args(forwarded) == given
    assert sorted(forwarded[::2]) == sorted(argv[::2])
