"""`liqbot bench sink` end to end at a tiny size, on the session broker and registry.

The benchmark opens chDB in its own process (one chDB directory per process, and other tests open theirs), so it
runs as the `liqbot bench sink` command an operator runs, not in the test's process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from liqbot.config import Settings
from liqbot.data import REPO


def test_bench_sink_lands_every_record_and_measures_throughput_and_freshness(
        settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix,
           "LIQBOT_PARTITIONS": str(settings.kafka.partitions), "LIQBOT_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "liqbot.cli", "bench", "--bootstrap", settings.kafka.bootstrap_servers,
               "--registry", settings.serde.registry_url, "--results-dir", str(tmp_path), "sink",
               "--records", "20000", "--rate", "2000", "--freshness-s", "3", "--sample-every", "10"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert figures["benchmark"] == "sink"
    assert json.loads((tmp_path / "sink.json").read_text()) == figures

    # throughput: every record landed once, counted by ClickHouse, none dead-lettered
    assert figures["records"] == figures["landed_rows"] == figures["sink_rows"] == 20000
    assert figures["dead_letters"] == 0
    assert figures["sink_records_per_s"] > 0 and figures["baseline_records_per_s"] > 0
    ratio = figures["sink_records_per_s"] / figures["baseline_records_per_s"]
    assert abs(figures["sink_over_baseline"] - ratio) < 0.01
    assert 0 < figures["sink_first_commit_s"] <= figures["sink_seconds"]

    # freshness: 3 s at 2,000/s after a 1 s warm-up, every 10th looked for; all of them found
    assert figures["freshness_produced"] == figures["freshness_rows"] == 2000 + 6000
    assert figures["freshness_samples"] == figures["freshness_found"] == 600
    assert 0 < figures["freshness_p50_ms"] <= figures["freshness_p99_ms"] <= figures["freshness_max_ms"]
    assert figures["freshness_from_ack_p99_ms"] <= figures["freshness_p99_ms"]
    assert 0 <= figures["freshness_inserted_p50_ms"] <= figures["freshness_inserted_p99_ms"]
    for key in ("records_per_s_met", "over_baseline_met", "freshness_met", "targets_met"):
        assert isinstance(figures[key], bool), key
