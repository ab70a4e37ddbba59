"""`liqbot train` and `liqbot bench inference` as a user runs them (neither needs Kafka)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liqbot.cli import main
from liqbot.data import BYBIT_CAPTURE


def test_train_refuses_a_missing_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path / "missing.gz"), "--models", str(tmp_path / "models")]) == 2
    assert "capture not found" in capsys.readouterr().err and not (tmp_path / "models").exists()


def test_bench_inference_runs_on_the_committed_model_without_a_broker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--results-dir", str(tmp_path), "inference", "--calls", "400", "--rounds", "2"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads((tmp_path / "inference.json").read_text())
    assert last["benchmark"] == "inference" and last["calls"] == 400 and last["arms"] == 8
    assert 0 < last["p50_us"] <= last["p99_us"] and 0 < last["naive_p50_us"] <= last["naive_p99_us"]


def test_train_on_a_capture_too_short_to_settle_any_label_says_so(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(BYBIT_CAPTURE), "--models", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "0 rows (0 filled), 1152 not settled before the tape ends" in out
    assert "no labelled rows" in err and list(tmp_path.iterdir()) == []
