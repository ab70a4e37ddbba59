"""The real Binance capture as decision points and tapes, the dataset of both real captures, and a fit: once."""

from __future__ import annotations

import pytest

from decision.feature_spec import FeatureSpec
from decision.features import MarketRecord
from liqbot.data import BINANCE_CAPTURE
from training.dataset import Dataset, DecisionPoints, build_dataset, decision_points, market_records
from training.fit import Fitted, fit, time_split


@pytest.fixture(scope="session")
def binance_records() -> list[MarketRecord]:
    assert BINANCE_CAPTURE.exists(), f"real capture missing: {BINANCE_CAPTURE}"
    return market_records(BINANCE_CAPTURE, "binance-usdm")


@pytest.fixture(scope="session")
def binance_points(binance_records: list[MarketRecord]) -> DecisionPoints:
    return decision_points(binance_records, FeatureSpec())


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return build_dataset()


@pytest.fixture(scope="session")
def fitted(dataset: Dataset) -> Fitted:
    return fit(dataset, time_split(dataset))
