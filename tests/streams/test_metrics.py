"""The hot-loop histogram and counter expose what prometheus_client's Histogram and Counter would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from streams.metrics import HotCounter, HotHistogram


def _samples(registry: CollectorRegistry) -> list[str]:
    """The exposition without `_created` (a start time the hot histogram leaves out)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_same_exposition_as_prometheus_client_histogram() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    buckets = (0.001, 0.01, 0.1)
    hot = HotHistogram("x_seconds", "doc", ("venue",), buckets, registry=ours)
    reference = Histogram("x_seconds", "doc", ["venue"], buckets=buckets, registry=theirs)
    for value in (0.0, 0.001, 0.0011, 0.01, 0.5, 7.0, 0.05):  # bounds themselves belong to their bucket (le)
        hot.labels("bybit").observe(value)
        reference.labels("bybit").observe(value)
    hot.labels("binance").observe(0.002)
    reference.labels("binance").observe(0.002)
    assert _samples(ours) == _samples(theirs)
    assert b'x_seconds_bucket{le="0.001",venue="bybit"} 2.0' in generate_latest(ours)


def test_wrong_label_count_is_refused() -> None:
    hot = HotHistogram("y_seconds", "doc", ("venue",), (1.0,), registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"y_seconds takes labels \('venue',\), got \('a', 'b'\)"):
        hot.labels("a", "b")


def test_counter_has_the_same_exposition_as_prometheus_client_counter() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    hot = HotCounter("x_frames_total", "doc", ("venue", "kind"), registry=ours)
    reference = Counter("x_frames_total", "doc", ["venue", "kind"], registry=theirs)
    for venue, kind, amount in (("bybit", "book", 1), ("bybit", "book", 2), ("binance", "trade", 1)):
        hot.labels(venue, kind).inc(amount)
        reference.labels(venue, kind).inc(amount)
    assert _samples(ours) == _samples(theirs)
    assert b'x_frames_total{kind="book",venue="bybit"} 3.0' in generate_latest(ours)
    with pytest.raises(ValueError, match=r"x_frames_total takes labels \('venue', 'kind'\), got \('a',\)"):
        hot.labels("a")
