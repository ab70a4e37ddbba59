"""The `liqbot` door: the foundation's main job, schema checks and a benchmark, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from liqbot.config import Settings


def _liqbot(settings: Settings | None, *args: str, prefix: str = "",
            home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"LIQBOT_HOME": str(home)} if home else {})}
    if settings is not None:
        env["LIQBOT_TOPIC_PREFIX"] = prefix or f"cli{uuid.uuid4().hex[:8]}."
        env["LIQBOT_PARTITIONS"] = str(settings.kafka.partitions)
        # right after the subcommand: `bench` passes everything after its name on to the benchmark
        args = (args[0], "--bootstrap", settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url,
                *args[1:])
    return subprocess.run([sys.executable, "-m", "liqbot.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_roundtrip_of_the_real_captures_twice_on_the_same_topics(settings: Settings) -> None:
    prefix = f"cli{uuid.uuid4().hex[:8]}."
    first = _liqbot(settings, "roundtrip", prefix=prefix)
    assert first.returncode == 0, first.stdout + first.stderr
    run = _liqbot(settings, "roundtrip", prefix=prefix)  # the first run's records are not read back
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == ("parsed 3233 frames from 2 captures (book 2148, control 24, ignored 96, instrument 2, "
                        "liquidation 4, ticker 839, trade 120) into 6844 records")
    table = {line.split()[0].split(".", 1)[1]: line.split()[1:] for line in lines if line.startswith("cli")}
    assert table == {
        "market.book": ["liqbot.BookUpdate", "2148", "2148", "yes", "yes"],
        "market.instruments": ["liqbot.Instrument", "1357", "1357", "yes", "yes"],
        "market.liquidations": ["liqbot.Liquidation", "5", "5", "yes", "yes"],
        "market.tickers": ["liqbot.Ticker", "839", "839", "yes", "yes"],
        "market.top_of_book": ["liqbot.TopOfBook", "2148", "2148", "yes", "yes"],
        "market.trades": ["liqbot.Trade", "347", "347", "yes", "yes"],
    }
    summary = json.loads(lines[-1])
    assert summary["records_sent"] == summary["records_received"] == 6844 and summary["identical"] is True


def test_roundtrip_with_a_missing_capture_says_where_data_lives(settings: Settings) -> None:
    run = _liqbot(settings, "roundtrip", "/nonexistent/capture.jsonl.zst")
    assert run.returncode == 2
    assert run.stderr == ("error: capture not found: /nonexistent/capture.jsonl.zst "
                          "(the real data lives in ../shared/data)\n")


def test_schemas_check_against_released() -> None:
    run = _liqbot(None, "schemas", "check")
    assert run.returncode == 0, run.stdout
    assert len(run.stdout.splitlines()) == 16 and all(line.endswith("compatible") for line in run.stdout.splitlines())


def test_bench_serde_prints_json_last(settings: Settings, tmp_path: Path) -> None:
    run = _liqbot(settings, "bench", "--results-dir", str(tmp_path), "serde", "--records", "3000", "--seconds", "1",
                  "--rate", "1000")
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(run.stdout.splitlines()[-1])
    assert json.loads((tmp_path / "serde.json").read_text()) == figures
    assert {"avro_records_per_s", "raw_records_per_s", "p50_ms", "p99_ms"} <= set(figures)
    assert figures["latency_samples"] == 1000 and figures["avro_records_per_s"] > 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]


def test_bench_ingest_prints_json_last(settings: Settings, tmp_path: Path) -> None:
    run = _liqbot(settings, "bench", "--results-dir", str(tmp_path), "ingest", "--seconds", "1", "--rate", "500")
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(run.stdout.splitlines()[-1])
    assert figures["binance_records"] == 100498 and figures["bybit_records"] == 6839
    assert figures["frames_per_s"] > 0
    assert 0 < figures["p50_receive_to_produce_ms"] <= figures["p99_receive_to_produce_ms"]


def test_unknown_benchmark_lists_the_known_ones(settings: Settings) -> None:
    run = _liqbot(settings, "bench", "nosuch")
    assert run.returncode == 2
    assert run.stderr == ("error: no benchmark 'nosuch'; available: ingest, serde, inference, e2e, agents, sink, "
                          "replay\n")


def test_the_paper_venue_flags_are_refused_with_live_and_checked_before_a_replay_copies() -> None:
    live = _liqbot(None, "agents", "worker", "--live", "--queue-model", "log_prob")
    assert live.returncode == 2
    assert "drop them with --live (Bybit's own latency and queue apply)" in live.stderr, live.stderr
    bad = _liqbot(None, "replay", "--from", "0", "--to", "1", "--run", "r", "--entry-latency", "soon")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --entry-latency: "), bad.stderr


def test_test_passes_options_to_pytest_and_other_commands_refuse_them(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one() -> None:\n    assert True\n")
    run = _liqbot(None, "test", "-q", "--co", str(tmp_path / "test_one.py"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_one.py::test_one" in run.stdout and "1 test collected" in run.stdout
    refused = _liqbot(None, "topics", "--nosuch")
    assert refused.returncode == 2 and "unrecognized arguments: --nosuch" in refused.stderr


def test_pipeline_runs_the_real_captures_into_clickhouse_and_summarises_from_it(settings: Settings,
                                                                                 tmp_path: Path) -> None:
    run = _liqbot(settings, "pipeline", "--run", f"p{uuid.uuid4().hex[:8]}", home=tmp_path / "home")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    summary = json.loads(run.stdout.splitlines()[-1])
    # every record of the three real captures, through ingest, the worker and the sink (README's main job)
    assert summary["market_records_ingested"] == summary["market_rows_in_clickhouse"] == 107_342
    assert (summary["trades"], summary["liquidations"], summary["dead_letters"]) == (21_660, 5, 0)
    assert summary["feature_vectors"] == 4 and summary["predictions"] == 2
    for title in ("rows per table", "market records per venue and symbol", "feature vectors and predictions",
                  "orders and fills", "dead letters"):
        assert f"== {title}" in run.stdout
    assert "│ binance-usdm │ BTCUSDT  │  21313 │" in run.stdout
    # then the same history from ClickHouse through `liqbot backtest`: the worker's decisions again
    backtest = summary["backtest"]
    assert backtest["decision_points"] == summary["feature_vectors"] and backtest["intents"] == summary["order_intents"]
    assert sum(backtest["rows"].values()) == 105_997  # the market tables the agents read, instruments of these symbols
    assert "== backtest of the same history" in run.stdout
    report = Path(backtest["report"])
    assert report.parent == tmp_path / "home" / "pipeline" / summary["run"] and report.with_suffix(".png").is_file()
    assert "No trades: no order filled in this span" in report.read_text()
    # the sink has stopped: `liqbot sql` opens the store itself
    after = _liqbot(None, "sql", "SELECT count() FROM trades", "--format", "csv", home=tmp_path / "home")
    assert after.returncode == 0 and after.stdout.splitlines()[-1] == "21660", after.stderr
