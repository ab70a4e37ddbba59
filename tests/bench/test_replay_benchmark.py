"""`liqbot bench replay` at a tiny size: the first lines of the real Binance capture and a short SYNTHETIC wick
scenario, ours from chDB against hftbacktest in its own environment (made on first use). No Kafka."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import NO_KAFKA, run_benchmark
from liqbot.config import Settings

KEYS = ("events_per_s", "market_seconds_per_s", "hftbacktest_s", "replay_s", "speed_over_hftbacktest",
        "load_rows_per_s", "decision_points", "orders")


def test_bench_replay_reports_both_sides_and_the_counts_the_engine_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "replay" in NO_KAFKA
    argv = ["--lines", "5000", "--scenario-seconds", "900", "--scenario-bursts", "4", "--profile-top", "5"]
    assert run_benchmark("replay", argv, Settings.from_env({}), tmp_path) == 0
    out = capsys.readouterr().out
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    assert figures["benchmark"] == "replay" and json.loads((tmp_path / "replay.json").read_text()) == figures
    assert all(figures[k] is not None for k in KEYS)
    assert figures["events_per_s"] > 0 and figures["replay_s"] > 0 and figures["hftbacktest_s"] > 0
    assert figures["market_records"] == figures["records"] > 0 and figures["load_rows_per_s"] > 0
    assert figures["speed_over_hftbacktest"] == pytest.approx(figures["hftbacktest_s"] / figures["replay_s"], rel=0.02)
    # the Binance capture holds no liquidation: no decision point, so hftbacktest places nothing either
    assert figures["decision_points"] == figures["hftbacktest_orders"] == figures["orders"] == 0
    assert figures["hftbacktest_events"] > figures["hftbacktest_feeds"] > 0
    # the SYNTHETIC scenario reaches the order path; `scenario_orders` counts the engine's intents
    assert figures["scenario_synthetic"] is True
    assert figures["scenario_decision_points"] >= figures["scenario_predictions"] > 0
    assert 0 < figures["scenario_orders"] <= figures["scenario_order_events"]
    assert figures["scenario_fills"] > 0  # entries and exits
    assert len(figures["profile_top"]) == 5 and figures["profile_top"][0]["cumulative_s"] > 0
    assert figures["events_per_s_met"] is (figures["events_per_s"] >= 1_000_000)
    assert ("NOT met" in out) is not figures["targets_met"]
