"""Scoring: one feature vector and the arm grid to a `Prediction`; the model runtime (onnxruntime) lives in training/.

For each arm (delta, T) the model gives `expected_net_return`, the mean `WickOrder.net_return()` of the order *given
that it fills* (fraction of notional, after maker/taker fees and funding), and `fill_probability`, the probability
that the post-only limit fills before T (a trade prints through it). Their product is the arm's unconditional edge.

NaN policy. A feature the decision needs (the book: spread, microprice, depth) must be finite, else the vector is
skipped; features that are undefined by design (no liquidation yet, no trade in a window, no funding or open
interest feed) may be NaN and go to the model as missing, which LightGBM routes along a learned branch. An infinite
value anywhere, or a non-finite model output, skips too. Every skip is counted and logged; a skipped vector makes
no prediction, so no order can follow from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from decision.arms import Arm, ArmGrid
from decision.feature_spec import FeatureSpec
from decision.orders import ExitRule, Fees
from liqbot.errors import LiqbotError
from schemas.records import ArmPrediction, FeatureVector, Prediction, Side

__all__ = [
    "ARM_INPUTS", "ArmInputs", "Model", "ModelCard", "ModelMismatchError", "Scorer", "input_names",
    "label_fingerprint", "missing_by_design", "required_mask", "screen",
]

log = logging.getLogger(__name__)

ARM_INPUTS = ("arm_delta_bps", "arm_valid_for_ms", "side_sign")  # after the features; side_sign +1 buy, -1 sell
# Features that are NaN when there is nothing to measure; every other feature is always defined when the book is.
_MISSING_BY_DESIGN = ("liq_imbalance_", "liq_seconds_since_last", "liq_largest_", "trade_imbalance_",
                      "trade_vwap_dev_bps_", "trade_rv_", "oi_change_", "funding_")

Floats = npt.NDArray[np.float32]


class ModelMismatchError(LiqbotError):
    """A model trained for another feature spec, arm grid or label definition: refused, never scored."""


def input_names(spec: FeatureSpec) -> tuple[str, ...]:
    """The model's input columns: the features in spec order, then the arm and the side."""
    return (*spec.names(), *ARM_INPUTS)


def missing_by_design(name: str) -> bool:
    """True for a feature that may be NaN (nothing to measure), False for one the decision needs defined."""
    return name.startswith(_MISSING_BY_DESIGN)


def label_fingerprint(exit_rule: ExitRule, fees: Fees) -> str:
    """What a label means (holding horizon, TP/SL, fees): a model trained on other labels must be refused."""
    text = json.dumps({"exit_rule": asdict(exit_rule), "fees": asdict(fees)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """What a model was trained for; the `Scorer` compares each fingerprint with its own."""

    version: str  # content hash of the model file
    feature_spec: str
    arm_grid: str
    labels: str
    inputs: tuple[str, ...]


class Model(Protocol):
    """A fitted model: rows of `input_names` in, per row (net return given a fill, fill probability) out."""

    @property
    def card(self) -> ModelCard: ...

    def run(self, inputs: Floats) -> tuple[Floats, Floats]:
        """Both outputs for every row of `inputs` ((rows, columns) float32); valid until the next call."""
        ...


@dataclass
class ArmInputs:
    """The model's input rows for one vector, one row per arm, in a buffer allocated once."""

    grid: ArmGrid
    spec: FeatureSpec
    buffer: Floats = field(init=False)

    def __post_init__(self) -> None:
        arms, n = self.grid.arms(), len(self.spec.names())
        self.buffer = np.zeros((len(arms), n + len(ARM_INPUTS)), dtype=np.float32)
        self.buffer[:, n] = [a.delta_bps for a in arms]
        self.buffer[:, n + 1] = [a.valid_for_ms for a in arms]

    def fill(self, values: tuple[float, ...] | Floats, side: Side) -> Floats:
        """Write the vector into every row and the side into the last column; returns the buffer."""
        n = self.buffer.shape[1] - len(ARM_INPUTS)
        self.buffer[:, :n] = values
        self.buffer[:, -1] = 1.0 if side == "BUY" else -1.0
        return self.buffer


def required_mask(spec: FeatureSpec) -> npt.NDArray[np.bool_]:
    """True for each feature (spec order) that must be finite for the vector to be scored."""
    return np.array([not missing_by_design(n) for n in spec.names()])


def screen(row: Floats, required: npt.NDArray[np.bool_]) -> str | None:
    """Why a vector (as the model sees it, float32) must not be scored, or None when it may be."""
    finite = np.isfinite(row)
    if finite.all():
        return None
    if np.isinf(row).any():
        return "infinite_feature"  # also a value beyond float32's range
    if (required > finite).any():  # a required feature that is not finite
        return "missing_required"
    return None  # only features that are NaN by design


def _check(card: ModelCard, expected: ModelCard) -> None:
    for what in ("feature_spec", "arm_grid", "labels", "inputs"):
        got, want = getattr(card, what), getattr(expected, what)
        if got != want:
            shown = (got, want) if what != "inputs" else (f"{len(got)} columns", f"{len(want)} columns")
            raise ModelMismatchError(
                f"model {card.version} was trained for {what} {shown[0]}, this agent runs {shown[1]}: refused; "
                "retrain it (`liqbot train`) or run the spec it was trained for")


@dataclass
class Scorer:
    """Feature vectors to predictions with one model; refuses a model trained for another spec, grid or labels."""

    model: Model
    spec: FeatureSpec = field(default_factory=FeatureSpec)
    grid: ArmGrid = field(default_factory=ArmGrid)
    exit_rule: ExitRule = field(default_factory=ExitRule)
    fees: Fees = field(default_factory=Fees)
    counts: Counter[str] = field(default_factory=Counter)  # scored, and each reason to skip
    card: ModelCard = field(init=False)
    inputs: ArmInputs = field(init=False)
    arms: tuple[Arm, ...] = field(init=False)
    required: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.card = self.model.card
        _check(self.card, ModelCard(version="", feature_spec=self.spec.fingerprint(), arm_grid=self.grid.fingerprint(),
                                    labels=label_fingerprint(self.exit_rule, self.fees), inputs=input_names(self.spec)))
        self.inputs = ArmInputs(self.grid, self.spec)
        self.arms = self.grid.arms()
        self.required = required_mask(self.spec)

    def score(self, vector: FeatureVector, side: Side) -> tuple[list[float], list[float]] | None:
        """(net return given a fill, fill probability) per arm in grid order; None (counted, logged) when skipped."""
        if vector.feature_spec != self.card.feature_spec:
            self._skip("spec_mismatch", vector)
            return None
        rows = self.inputs.fill(vector.values, side)
        reason = screen(rows[0, : self.required.size], self.required)
        if reason is not None:
            self._skip(reason, vector)
            return None
        net_return, fill_probability = self.model.run(rows)
        outputs = net_return.tolist(), fill_probability.tolist()
        if not all(map(math.isfinite, outputs[0] + outputs[1])):
            self._skip("non_finite_output", vector)
            return None
        self.counts["scored"] += 1
        return outputs

    def predict(self, vector: FeatureVector, side: Side) -> Prediction | None:
        """`score` as the `Prediction` record for an entry on `side`; None when the vector was skipped."""
        scored = self.score(vector, side)
        if scored is None:
            return None
        arms = tuple(ArmPrediction(delta_bps=arm.delta_bps, valid_for_ms=arm.valid_for_ms, expected_net_return=r,
                                   fill_probability=p) for arm, r, p in zip(self.arms, *scored, strict=True))
        return Prediction(venue=vector.venue, symbol=vector.symbol, event_id=vector.event_id,
                          ts_event_ns=vector.ts_event_ns, ts_recv_ns=vector.ts_recv_ns, model_version=self.card.version,
                          feature_spec=vector.feature_spec, arms=arms)

    def _skip(self, reason: str, vector: FeatureVector) -> None:
        self.counts[reason] += 1
        if reason == "spec_mismatch":
            detail = f"vector spec {vector.feature_spec}, model spec {self.card.feature_spec}"
        elif reason == "non_finite_output":
            detail = f"model {self.card.version} returned NaN or infinity"
        else:  # the offending features as the model would have seen them (float32)
            row = self.inputs.buffer[0, : self.required.size]
            bad = np.isinf(row) | (np.isnan(row) & self.required)
            detail = ", ".join(name for name, b in zip(self.spec.names(), bad.tolist(), strict=True) if b)
        log.warning("no prediction for %s %s %s at %d: %s (%s)", vector.venue, vector.symbol, vector.event_id,
                    vector.ts_event_ns, reason, detail)
