"""The model registry: the committed model loads and scores real vectors; a corrupt, unreadable or mismatched
model is refused with an error that names the file and what to do."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from decision.feature_spec import FeatureSpec
from decision.scoring import ModelMismatchError, Scorer
from training.dataset import Dataset, DecisionPoints
from training.export import to_onnx
from training.fit import PARAMS, Fitted, predict
from training.onnx_model import ModelLoadError
from training.registry import ModelRegistry, content_version
from training.serving import ServedModel


def copy_of_committed(tmp_path: Path) -> tuple[ModelRegistry, str]:
    committed = ModelRegistry()
    version = committed.current()
    shutil.copytree(committed.root / version, tmp_path / version)
    (tmp_path / "CURRENT").write_text(version + "\n")
    return ModelRegistry(tmp_path), version


def test_the_committed_model_scores_real_vectors(binance_points: DecisionPoints, fitted: Fitted) -> None:
    model = ModelRegistry().load()
    scorer = Scorer(model)
    point = binance_points.points[200]
    prediction = scorer.predict(point.vector, "BUY")
    assert prediction is not None and prediction.model_version == model.card.version
    assert [(a.delta_bps, a.valid_for_ms) for a in prediction.arms] == [(5.0, 10_000), (5.0, 60_000), (10.0, 10_000),
                                                                        (10.0, 60_000), (20.0, 10_000), (20.0, 60_000),
                                                                        (40.0, 10_000), (40.0, 60_000)]
    rows = scorer.inputs.fill(point.vector.values, "BUY").copy()
    assert np.allclose([a.fill_probability for a in prediction.arms], predict(fitted.fill, rows), atol=1e-6)
    assert np.allclose([a.expected_net_return for a in prediction.arms], predict(fitted.net_return, rows), atol=1e-6)


def test_a_corrupt_model_file_is_refused_naming_it(tmp_path: Path) -> None:
    registry, version = copy_of_committed(tmp_path)
    path = tmp_path / version / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=rf"{path} is corrupt.*liqbot train"):
        registry.load()


def test_bytes_onnxruntime_cannot_read_are_refused_naming_the_file(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = registry.publish(b"not an onnx model", ModelRegistry().meta())  # its version: the hash of these bytes
    with pytest.raises(ModelLoadError, match=rf"{tmp_path / version / 'model.onnx'}: onnxruntime cannot load it"):
        registry.load()


def test_a_model_of_another_shape_is_refused(tmp_path: Path) -> None:
    registry, version = copy_of_committed(tmp_path)
    meta_path = tmp_path / version / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "inputs": meta["inputs"][:-1]}))
    shape = r"model.onnx: inputs \[\('inputs', 52\)\].*expected \[\('inputs', 51\)\].*rebuild it"
    with pytest.raises(ModelLoadError, match=shape):
        registry.load()


def test_missing_registry_or_metadata_says_to_train(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"CURRENT is missing.*liqbot train"):
        ModelRegistry(tmp_path / "empty").load()
    registry, version = copy_of_committed(tmp_path)
    (tmp_path / version / "meta.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable model metadata"):
        registry.load()


def test_an_unknown_version_is_refused_with_the_versions_the_registry_holds(tmp_path: Path) -> None:
    registry, version = copy_of_committed(tmp_path)
    with pytest.raises(ModelLoadError, match=rf"no model version 0123456789abcdef in {tmp_path}; it holds {version} "):
        registry.load("0123456789abcdef")
    assert registry.versions() == [version]


def test_a_model_for_another_feature_spec_is_refused(tmp_path: Path) -> None:
    registry, version = copy_of_committed(tmp_path)
    model = registry.load()
    other = FeatureSpec(trade_windows_s=(5, 30, 60, 600))
    expected = f"model {version} was trained for feature_spec {FeatureSpec().fingerprint()}, this agent runs "
    with pytest.raises(ModelMismatchError, match=expected + other.fingerprint()):
        Scorer(model, spec=other)


def test_publishing_is_idempotent_and_moves_current(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    first = registry.publish(b"model one", {"note": "synthetic bytes"})
    second = registry.publish(b"model two", {"note": "synthetic bytes"})
    assert registry.current() == second == content_version(b"model two") and first != second
    assert registry.publish(b"model one", {"note": "changed"}) == first and registry.current() == first
    assert registry.meta(first) == {"version": first, "note": "synthetic bytes"}  # a version is never rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["CURRENT", first, second])



def tiny_model(dataset: Dataset, rounds: int) -> bytes:
    """A valid ONNX model of the right shape fitted for a few rounds to nonsense targets: NOT a model of markets."""
    def booster(objective: str, target: np.ndarray) -> lgb.Booster:
        return lgb.train({**PARAMS, "objective": objective}, lgb.Dataset(dataset.inputs, label=target), rounds)

    return to_onnx(booster("regression", dataset.arm * 1.0), booster("binary", dataset.filled * 1.0),
                   dataset.inputs.shape[1])


def test_an_agent_halts_without_a_model_and_keeps_serving_when_a_new_one_is_refused(
        tmp_path: Path, dataset: Dataset, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ModelLoadError, match="liqbot train"):
        ServedModel(ModelRegistry(tmp_path / "empty"))  # start-up: nothing to serve, so no agent
    registry, version = copy_of_committed(tmp_path)
    served = ServedModel(registry)
    assert served.version == version and served.refresh() is False

    with caplog.at_level(logging.ERROR, logger="training.serving"):
        registry.publish(b"not an onnx model", registry.meta())
        assert served.refresh() is False
        registry.publish(tiny_model(dataset, 3), {**registry.meta(version), "feature_spec": "0123456789abcdef"})
        assert served.refresh() is False
    assert served.version == version and served.counts == {"refused": 2}
    assert caplog.text.count(f"model not replaced, still serving {version}") == 2
    assert "onnxruntime cannot load" in caplog.text and "was trained for feature_spec 0123456789abcdef" in caplog.text

    newer = registry.publish(tiny_model(dataset, 4), registry.meta(version))
    assert served.refresh() is True and served.version == newer and served.counts == {"refused": 2, "reloaded": 1}
