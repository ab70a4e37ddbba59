"""The fitted model: its ONNX export predicts what LightGBM predicts, and `liqbot train` reproduces the committed
model byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnxruntime as ort
from hypothesis import given
from hypothesis import strategies as st

from decision.arms import ArmGrid
from decision.feature_spec import FeatureSpec
from decision.orders import ExitRule, Fees
from decision.scoring import label_fingerprint, missing_by_design
from training.dataset import Dataset
from training.export import to_onnx
from training.fit import PARAMS, ROUNDS, Fitted, _f32_floor, float32_thresholds, predict
from training.onnx_model import INPUT, OUTPUTS, session_options
from training.registry import ModelRegistry
from training.train import train


def onnx_outputs(fitted: Fitted, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = to_onnx(fitted.net_return, fitted.fill, inputs.shape[1])
    session = ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])
    net_return, fill = session.run(list(OUTPUTS), {INPUT: inputs})
    return net_return[:, 0], fill[:, 1]


def test_onnx_predicts_what_lightgbm_predicts_on_the_real_rows(dataset: Dataset, fitted: Fitted) -> None:
    net_return, fill = onnx_outputs(fitted, dataset.inputs)
    assert np.abs(net_return - predict(fitted.net_return, dataset.inputs)).max() < 1e-6
    assert np.abs(fill - predict(fitted.fill, dataset.inputs)).max() < 1e-6
    assert fill.min() > 0.0 and fill.max() < 1.0 and np.isfinite(net_return).all()


def test_onnx_routes_a_missing_value_as_lightgbm_does(dataset: Dataset, fitted: Fitted) -> None:
    """Real rows with one by-design-missing feature blanked at a time (modified real data, not a market claim):
    the features the real captures always define must still go the way LightGBM sends a NaN."""
    names = dataset.columns[: len(FeatureSpec().names())]
    blanked = [j for j, n in enumerate(names) if missing_by_design(n) and not np.isnan(dataset.inputs[:, j]).all()]
    assert len(blanked) == 12  # the trade imbalance, VWAP deviation and volatility of every window
    for j in blanked:
        inputs = dataset.inputs.copy()
        inputs[:, j] = np.nan
        net_return, fill = onnx_outputs(fitted, inputs)
        assert np.abs(net_return - predict(fitted.net_return, inputs)).max() < 1e-6, names[j]
        assert np.abs(fill - predict(fitted.fill, inputs)).max() < 1e-6, names[j]


@given(st.floats(allow_nan=False, allow_infinity=False, width=32), st.floats(allow_nan=False))
def test_a_float32_floor_threshold_keeps_every_float32_comparison(x: float, threshold: float) -> None:
    assert (x <= threshold) == (x <= _f32_floor(threshold))
    assert float(np.float32(_f32_floor(threshold))) == _f32_floor(threshold)


def test_float32_thresholds_change_no_prediction_on_float32_inputs(dataset: Dataset) -> None:
    data = lgb.Dataset(dataset.inputs, label=dataset.filled.astype(np.float64), free_raw_data=False)
    raw = lgb.train({**PARAMS, "objective": "binary"}, data, num_boost_round=ROUNDS)
    safe = float32_thresholds(raw)
    assert np.array_equal(predict(raw, dataset.inputs), predict(safe, dataset.inputs))
    thresholds = [t for tree in safe.dump_model()["tree_info"] for t in _thresholds(tree["tree_structure"])]
    assert thresholds and all(float(np.float32(t)) == t for t in thresholds)


def _thresholds(node: dict[str, object]) -> list[float]:
    if "threshold" not in node:
        return []
    children = [node["left_child"], node["right_child"]]
    return [float(node["threshold"]), *(t for c in children if isinstance(c, dict) for t in _thresholds(c))]  # type: ignore[arg-type]


def test_liqbot_train_reproduces_the_committed_model(tmp_path: Path) -> None:
    committed = ModelRegistry()
    version, meta = train(ModelRegistry(tmp_path), say=lambda _: None)
    shipped = committed.meta()
    assert version == committed.current(), (
        f"a re-fit gave {version}, the committed model is {committed.current()} (fitted with {shipped['libraries']}, "
        f"this run {meta['libraries']}): run `liqbot train` and commit training/models")
    assert json.loads((tmp_path / version / "meta.json").read_text()) == shipped
    assert (tmp_path / version / "model.onnx").read_bytes() == (committed.root / version / "model.onnx").read_bytes()


def test_the_committed_model_card_says_what_it_is() -> None:
    meta = ModelRegistry().meta()
    assert "placeholder" in meta["purpose"].lower() and meta["created_by"] == "liqbot train"
    assert meta["feature_spec"] == FeatureSpec().fingerprint() and meta["arm_grid"] == ArmGrid().fingerprint()
    assert meta["labels"] == label_fingerprint(ExitRule(), Fees())
    assert max(meta["lightgbm"]["trees"].values()) <= 100 and meta["lightgbm"]["params"]["max_depth"] <= 3
    assert [c["rows"] for c in meta["data"]] == [3968, 0]
    metrics = meta["metrics"]
    assert metrics["train_rows"] + metrics["test_rows"] < 3968  # the purge drops rows settled after the split
    assert 0.0 < metrics["fill"]["auc"] < 1.0 and metrics["net_return"]["test_filled_rows"] > 0
