"""`liqbot bench e2e` and `liqbot bench agents` end to end at a tiny size, on the session broker and registry.

The e2e market is the SYNTHETIC wick scenario (training/scenario.py); the agents benchmark reads the real captures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench import run_benchmark
from liqbot.config import Settings


def _last_json(capsys: pytest.CaptureFixture[str], results: Path, name: str) -> dict[str, Any]:
    figures: dict[str, Any] = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert figures["benchmark"] == name
    assert json.loads((results / f"{name}.json").read_text()) == figures
    return figures


def test_bench_e2e_measures_liquidation_to_intent_through_a_real_worker(
        settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--rate", "100", "--seconds", "20", "--burst-every", "2", "--baseline-seconds", "1"]
    assert run_benchmark("e2e", argv, settings, tmp_path) == 0
    figures = _last_json(capsys, tmp_path, "e2e")
    assert {"p50_ms", "p99_ms", "p999_ms", "rate_per_s", "prediction_p50_ms", "prediction_p99_ms"} <= set(figures)
    assert figures["synthetic"] is True and 80 < figures["rate_per_s"] < 130
    counts = figures["worker_counts"]
    assert figures["predictions"] == counts["sent:liqbot.Prediction"] > 0
    assert figures["intents"] == counts.get("sent:liqbot.OrderIntent", 0)
    assert 0 < figures["prediction_p50_ms"] <= figures["prediction_p99_ms"]
    # every paced liquidation also reached the bench's plain consumer: the broker path's own latency, same records
    assert figures["arrivals"] == figures["liquidations"] == counts["sent:liqbot.FeatureVector"]
    assert 0 < figures["arrival_p50_ms"] <= figures["arrival_p99_ms"] <= figures["arrival_max_ms"]
    assert all(intent > figures["target_p99_ms"] and arrival > 0 for intent, arrival in figures["slow_intents_ms"])
    assert len(figures["slow_intents_ms"]) <= figures["intents"]
    assert figures["raw_samples"] == figures["raw_three_hops_samples"] == figures["faust_samples"] == 100
    assert figures["raw_round_trip_p50_ms"] < figures["raw_three_hops_p50_ms"]  # two more trips through the broker
    if figures["intents"]:
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["p999_ms"]
        assert figures["p99_over_arrival_p99"] == round(figures["p99_ms"] / figures["arrival_p99_ms"], 2)
    else:
        assert math.isnan(figures["p50_ms"])


def test_bench_agents_measures_the_features_agent_against_a_plain_loop(
        settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # enough records for a worker to take several of its status intervals (0.05 s), by which its rate is timed:
    # the features agent alone folds 15,000 records in one interval on a quiet host
    assert run_benchmark("agents", ["--records", "80000"], settings, tmp_path) == 0
    figures = _last_json(capsys, tmp_path, "agents")
    assert figures["records"] == figures["feature_records"] == 80000  # the first Binance records: no listing
    for key in ("agent_records_per_s", "all_agents_worker_records_per_s", "worker_messages_per_s",
                "baseline_records_per_s", "faust_empty_loop_records_per_s", "decode_records_per_s",
                "feature_engine_records_per_s"):
        assert figures[key] > 0, key
    ratio = figures["agent_records_per_s"] / figures["baseline_records_per_s"]
    assert abs(figures["agent_over_baseline"] - ratio) < 0.01
