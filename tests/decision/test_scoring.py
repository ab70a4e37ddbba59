"""Scoring without onnxruntime: input rows, the NaN policy, refused models, and the Prediction record.

The model here is a stand-in that returns fixed numbers (SYNTHETIC outputs, no fitted weights); the vectors are the
feature engine's on the real Binance capture. The real ONNX model is tested in tests/training/.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np
import pytest

from decision.arms import ArmGrid
from decision.feature_spec import FeatureSpec
from decision.features import FeatureEngine
from decision.orders import ExitRule, Fees
from decision.scoring import (
    Floats,
    ModelCard,
    ModelMismatchError,
    Scorer,
    input_names,
    label_fingerprint,
    missing_by_design,
)
from schemas.records import FeatureVector, Trade
from training.dataset import real_records

SPEC, GRID = FeatureSpec(), ArmGrid()
NAMES = SPEC.names()


def card(**changes: object) -> ModelCard:
    good = ModelCard(version="synthetic0000000", feature_spec=SPEC.fingerprint(), arm_grid=GRID.fingerprint(),
                     labels=label_fingerprint(ExitRule(), Fees()), inputs=input_names(SPEC))
    return replace(good, **changes)  # type: ignore[arg-type]


@dataclass
class FixedModel:
    """Returns arm index * 0.001 as the net return and 0.5 as P(fill) (synthetic); keeps what it was given."""

    card: ModelCard = field(default_factory=card)
    seen: list[Floats] = field(default_factory=list)
    net_return: Floats = field(default_factory=lambda: np.arange(8, dtype=np.float32) * np.float32(0.001))

    def run(self, inputs: Floats) -> tuple[Floats, Floats]:
        self.seen.append(inputs.copy())
        return self.net_return, np.full(len(inputs), 0.5, dtype=np.float32)


@cache
def real_vector() -> FeatureVector:
    """The vector after the 5,000th record of the real Binance capture (a trade; book and depth known)."""
    engine, records = FeatureEngine(), real_records()[:5000]
    for record in records:
        engine.apply(record)
    last_trade = next(r for r in reversed(records) if isinstance(r, Trade))
    return engine.vector(last_trade)


def with_value(vector: FeatureVector, name: str, value: float) -> FeatureVector:
    values = list(vector.values)
    values[NAMES.index(name)] = value
    return replace(vector, values=tuple(values))


def test_rows_carry_the_vector_the_arm_and_the_side() -> None:
    model, vector = FixedModel(), real_vector()
    prediction = Scorer(model).predict(vector, "SELL")
    assert prediction is not None
    rows = model.seen[0]
    assert rows.shape == (8, 52) and rows.dtype == np.float32
    assert all(np.array_equal(row[:49], np.array(vector.values, dtype=np.float32), equal_nan=True) for row in rows)
    assert rows[:, 49].tolist() == [a.delta_bps for a in GRID.arms()]
    assert rows[:, 50].tolist() == [a.valid_for_ms for a in GRID.arms()] and set(rows[:, 51].tolist()) == {-1.0}
    Scorer(model).predict(vector, "BUY")
    assert set(model.seen[1][:, 51].tolist()) == {1.0}


def test_a_prediction_is_every_arm_in_grid_order() -> None:
    vector = real_vector()
    prediction = Scorer(FixedModel()).predict(vector, "BUY")
    assert prediction is not None
    assert (prediction.venue, prediction.symbol, prediction.event_id) == (vector.venue, vector.symbol, vector.event_id)
    assert (prediction.ts_event_ns, prediction.model_version) == (vector.ts_event_ns, "synthetic0000000")
    assert [(a.delta_bps, a.valid_for_ms) for a in prediction.arms] == [(a.delta_bps, a.valid_for_ms)
                                                                        for a in GRID.arms()]
    assert [a.expected_net_return for a in prediction.arms] == pytest.approx([i * 0.001 for i in range(8)])
    assert {a.fill_probability for a in prediction.arms} == {0.5}


def test_features_that_are_nan_by_design_are_scored() -> None:
    vector = real_vector()
    nan_names = {n for n, v in zip(NAMES, vector.values, strict=True) if math.isnan(v)}
    assert "liq_seconds_since_last" in nan_names and "funding_rate" in nan_names  # real: no liquidation, no funding
    assert all(missing_by_design(n) for n in nan_names)
    scorer = Scorer(FixedModel())
    assert scorer.predict(vector, "BUY") is not None and scorer.counts == {"scored": 1}


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("book_spread_bps", math.nan, "missing_required"),  # no book: no price to place an order at
    ("book_depth_imbalance_5", math.nan, "missing_required"),  # after a resync the depth is unknown
    ("liq_count_60s", math.nan, "missing_required"),  # always defined: a NaN here is a fault upstream
    ("trade_rv_5s", math.inf, "infinite_feature"),  # may be NaN, never infinite
    pytest.param("trade_count_5s", 1e39, "infinite_feature",  # beyond float32: the model would see infinity
                 marks=pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")),
])
def test_a_vector_the_policy_refuses_makes_no_prediction_and_is_counted_and_logged(
        name: str, value: float, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    model = FixedModel()
    scorer = Scorer(model)
    with caplog.at_level(logging.WARNING, logger="decision.scoring"):
        assert scorer.predict(with_value(real_vector(), name, value), "BUY") is None
    assert scorer.counts == {reason: 1} and model.seen == []
    assert [r.getMessage() for r in caplog.records] == [
        f"no prediction for binance-usdm BTCUSDT {real_vector().event_id} at {real_vector().ts_event_ns}: "
        f"{reason} ({name})"]


def test_a_non_finite_model_output_makes_no_prediction() -> None:
    model = FixedModel(net_return=np.array([0.0] * 7 + [np.nan], dtype=np.float32))
    scorer = Scorer(model)
    assert scorer.predict(real_vector(), "BUY") is None and scorer.counts == {"non_finite_output": 1}


def test_a_vector_of_another_spec_is_skipped_not_scored() -> None:
    model = FixedModel()
    scorer = Scorer(model)
    assert scorer.predict(replace(real_vector(), feature_spec="0123456789abcdef"), "BUY") is None
    assert scorer.counts == {"spec_mismatch": 1} and model.seen == []


@pytest.mark.parametrize(("changes", "what"), [
    ({"feature_spec": "0123456789abcdef"}, "feature_spec 0123456789abcdef"),
    ({"arm_grid": "0123456789abcdef"}, "arm_grid 0123456789abcdef"),
    ({"labels": label_fingerprint(ExitRule(hold_ms=30_000), Fees())}, "labels"),
    ({"inputs": input_names(SPEC)[:-1]}, "inputs 51 columns, this agent runs 52 columns"),
])
def test_a_model_trained_for_something_else_is_refused(changes: dict[str, object], what: str) -> None:
    with pytest.raises(ModelMismatchError, match=f"model synthetic0000000 was trained for {what}.*refused"):
        Scorer(FixedModel(card=card(**changes)))
