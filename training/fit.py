"""The interim model: two small LightGBM models (fill classifier, net-return regressor) on a time split, and metrics.

A placeholder until the training issue: fitted on minutes of real data, it is shipped only so that the scoring path
runs on real weights, never as a model with a demonstrated edge. Its held-out metrics say how little it knows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from liqbot.errors import LiqbotError
from training.dataset import Dataset

__all__ = ["PARAMS", "ROUNDS", "Fitted", "Split", "fit", "float32_thresholds", "predict", "time_split"]

# Shallow and few trees: a few thousand correlated rows support no more. Deterministic: one thread, fixed seed.
PARAMS: dict[str, Any] = {
    "num_leaves": 7, "max_depth": 3, "learning_rate": 0.05, "min_data_in_leaf": 20, "lambda_l2": 1.0,
    "feature_pre_filter": False, "seed": 7, "deterministic": True, "force_col_wise": True, "num_threads": 1,
    "verbose": -1,
}
ROUNDS = 60
TEST_FRACTION = 0.3


@dataclass(frozen=True)
class Split:
    """As-of time split: test rows are decided at or after `at_ns`; train rows' labels were settled by then."""

    at_ns: int
    train: npt.NDArray[np.bool_]
    test: npt.NDArray[np.bool_]


def time_split(data: Dataset, test_fraction: float = TEST_FRACTION) -> Split:
    """The last `test_fraction` of the decision-time span is held out; training rows whose label horizon reaches
    into it are purged (a model fitted at the split time could not have known them)."""
    if not data.decided_ns.size:
        raise LiqbotError("no labelled rows: every decision point is closer to its tape's end than T + H "
                          "(a capture must be longer than the shortest T plus the holding horizon)")
    first, last = int(data.decided_ns.min()), int(data.decided_ns.max())
    at_ns = last - int((last - first) * test_fraction)
    return Split(at_ns, data.settled_by_ns <= at_ns, data.decided_ns >= at_ns)


def _f32_floor(threshold: float) -> float:
    """The largest float32 at or below `threshold`."""
    with np.errstate(over="ignore"):  # a threshold beyond float32's range becomes its largest finite value
        f = np.float32(threshold)
    if float(f) > threshold:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def float32_thresholds(booster: lgb.Booster) -> lgb.Booster:
    """Every split `x <= t` rewritten as `x <= floor32(t)`: identical for float32 inputs, and exact in ONNX,
    whose tree thresholds are float32 (rounding t to nearest could send an input equal to it the other way)."""
    # without `tree_sizes` (byte offsets the new text no longer matches) LightGBM reads the trees one by one
    lines = [line for line in booster.model_to_string().splitlines() if not line.startswith("tree_sizes=")]
    for i, line in enumerate(lines):
        if line.startswith("threshold="):
            lines[i] = "threshold=" + " ".join(repr(_f32_floor(float(t))) for t in line.split("=", 1)[1].split())
    return lgb.Booster(model_str="\n".join(lines) + "\n")


def _train(inputs: npt.NDArray[np.float32], target: npt.NDArray[Any], objective: str,
           names: tuple[str, ...]) -> lgb.Booster:
    data = lgb.Dataset(inputs, label=target, feature_name=list(names), free_raw_data=False)
    return float32_thresholds(lgb.train({**PARAMS, "objective": objective}, data, num_boost_round=ROUNDS))


@dataclass(frozen=True)
class Fitted:
    """The fill classifier (binary, all rows) and the net-return regressor (filled rows), with their metrics."""

    fill: lgb.Booster
    net_return: lgb.Booster
    metrics: dict[str, Any] = field(default_factory=dict)


def fit(data: Dataset, split: Split) -> Fitted:
    """Fit both models on the training part; measure them on the held-out part."""
    names = data.columns
    train_filled = split.train & data.filled
    if split.train.sum() < PARAMS["min_data_in_leaf"] * 2 or train_filled.sum() < PARAMS["min_data_in_leaf"] * 2:
        raise LiqbotError(f"too few training rows ({split.train.sum()}, {train_filled.sum()} filled) to fit a model")
    fill = _train(data.inputs[split.train], data.filled[split.train].astype(np.float64), "binary", names)
    net = _train(data.inputs[train_filled], data.net_return[train_filled], "regression", names)
    return Fitted(fill, net, _metrics(data, split, fill, net))


def _metrics(data: Dataset, split: Split, fill: lgb.Booster, net: lgb.Booster) -> dict[str, Any]:
    """Held-out figures next to the naive baseline (the training mean), so that their size means something."""
    test, test_filled = split.test, split.test & data.filled
    y = data.filled[test].astype(np.float64)
    p = np.clip(predict(fill, data.inputs[test]), 1e-9, 1 - 1e-9)
    base = float(data.filled[split.train].mean())
    out: dict[str, Any] = {
        "train_rows": int(split.train.sum()), "test_rows": int(test.sum()),
        "fill": {"test_fill_rate": round(float(y.mean()), 4), "train_fill_rate": round(base, 4),
                 "log_loss": round(_log_loss(y, p), 4),
                 "log_loss_baseline": round(_log_loss(y, np.full_like(y, min(max(base, 1e-9), 1 - 1e-9))), 4),
                 "brier": round(float(np.mean((p - y) ** 2)), 4), "auc": _auc(y, p),
                 "auc_within_arm": _auc_within_arm(y, p, data.arm[test])},
    }
    r = data.net_return[test_filled]
    if r.size:
        pred = predict(net, data.inputs[test_filled])
        mean = float(np.mean(data.net_return[split.train & data.filled]))
        out["edge"] = _edge(data, split, fill, net)
        out["net_return"] = {
            "train_filled_rows": int((split.train & data.filled).sum()), "test_filled_rows": int(r.size),
            "test_mean": float(np.round(r.mean(), 6)), "mae": float(np.round(np.mean(np.abs(pred - r)), 6)),
            "mae_baseline": float(np.round(np.mean(np.abs(mean - r)), 6)),
            "correlation": _round(float(np.corrcoef(pred, r)[0, 1]) if r.size > 1 and pred.std() > 0 else math.nan),
        }
    return out


def _edge(data: Dataset, split: Split, fill: lgb.Booster, net: lgb.Booster) -> dict[str, Any]:
    """The decision rule on held-out rows: realised mean outcome (net return, 0 when unfilled) where the model's
    edge P(fill) * E[net | fill] is positive, against all rows."""
    x = data.inputs[split.test]
    realised = np.where(data.filled[split.test], data.net_return[split.test], 0.0)
    positive = predict(fill, x) * predict(net, x) > 0
    return {"test_rows_positive": int(positive.sum()),
            "realised_mean_positive": float(np.round(realised[positive].mean(), 6)) if positive.any() else None,
            "realised_mean_all": float(np.round(realised.mean(), 6))}


def _auc_within_arm(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64],
                    arm: npt.NDArray[np.int64]) -> float | None:
    """AUC inside each arm, weighted by rows: what the features add beyond the arm's own fill rate."""
    scored = [(auc, int((arm == a).sum())) for a in np.unique(arm)
              if (auc := _auc(y[arm == a], p[arm == a])) is not None]
    if not scored:
        return None
    return round(sum(a * n for a, n in scored) / sum(n for _, n in scored), 4)


def predict(booster: lgb.Booster, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """LightGBM's own prediction (probability for the classifier) as float64."""
    return np.asarray(booster.predict(inputs), dtype=np.float64)


def _log_loss(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> float:
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _auc(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> float | None:
    """Probability that a random filled row scores above a random unfilled one (ties count half)."""
    pos, neg = p[y == 1], p[y == 0]
    if not pos.size or not neg.size:
        return None
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return round(float(wins / (pos.size * neg.size)), 4)


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)
