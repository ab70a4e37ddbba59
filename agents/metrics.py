"""The agents worker's metrics (docs/metrics.md): histograms a record feeds with one bisect, and a collector that
reads the agents' own counts and state when Prometheus scrapes, so that a record costs at most an add.

Counters read at scrape time are process-wide and only grow (records in and out, errors, model load failures);
gauges read the state of the partitions this worker owns now (`agents/trading_metrics.py`), so they move with a
rebalance. Scrapes run on the HTTP server's thread: they copy a container before walking it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from agents.trading_metrics import trading_families
from decision.pipeline import DecideStep
from decision.strategy import Decision
from schemas.records import FeatureVector, Liquidation, Prediction, Side
from streams.metrics import HotHistogram
from training.serving import ServedModel

__all__ = ["EXCHANGE_TO_DECISION", "GC_PAUSE_SECONDS", "INFERENCE_SECONDS", "PROCESS_SECONDS", "RISK_REFUSALS",
           "SNAPSHOT_SECONDS", "WORKER", "Counted", "Flow", "TimedScorer", "WorkerMetrics", "decided"]

_PROCESS_BUCKETS_S = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 0.01, 0.1)
_INFERENCE_BUCKETS_S = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 0.01, 0.1)
_DECISION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_PAUSE_BUCKETS_S = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

PROCESS_SECONDS = HotHistogram("liqbot_agent_process_seconds",
                               "One record through an agent's step (sampled: one in 64 per agent and topic)",
                               ("agent",), buckets=_PROCESS_BUCKETS_S)
EXCHANGE_TO_DECISION = HotHistogram("liqbot_exchange_to_decision_seconds",
                                    "A liquidation's exchange time to the order intent decided on it",
                                    ("venue",), buckets=_DECISION_BUCKETS_S)
INFERENCE_SECONDS = HotHistogram("liqbot_model_inference_seconds",
                                 "One scoring call of the served model that gave a prediction", (),
                                 buckets=_INFERENCE_BUCKETS_S)
SNAPSHOT_SECONDS = HotHistogram("liqbot_snapshot_seconds", "One state snapshot to the changelog (the reader waits)",
                                ("agent",), buckets=_PAUSE_BUCKETS_S)
GC_PAUSE_SECONDS = HotHistogram("liqbot_gc_pause_seconds", "One garbage collection (the reader waits)",
                                ("generation",), buckets=_PAUSE_BUCKETS_S)
RISK_REFUSALS = Counter("liqbot_risk_refusals_total", "Intents the risk rules refused, by rule", ["reason"])


class Counted(Protocol):
    """An agent's records in and out by topic and the inputs it failed on: a chain's `Step`, or a `Flow`."""

    name: str
    fed: dict[str, int]
    made: dict[str, int]
    errors: int


@dataclass
class Flow:
    """The counts of an agent that is not a chain's step (the live execute agent)."""

    name: str
    fed: dict[str, int] = field(default_factory=dict)
    made: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def took(self, topic: str) -> None:
        self.fed[topic] = self.fed.get(topic, 0) + 1

    def gave(self, topic: str) -> None:
        self.made[topic] = self.made.get(topic, 0) + 1


def decided(decision: Decision, trigger: Liquidation) -> None:
    """Decide's hook: count the rules that refused; time an intent from its liquidation's exchange time."""
    for rule in decision.rules:
        RISK_REFUSALS.labels(rule).inc()
    if decision.intent is not None:
        # exchange and local clocks may disagree: a negative latency counts as 0
        EXCHANGE_TO_DECISION.labels(trigger.venue).observe(max(time.time_ns() - trigger.ts_exchange_ns, 0) / 1e9)


@dataclass
class TimedScorer:
    """The served model's scorer, timed: what the predict agent calls."""

    served: ServedModel

    def predict(self, vector: FeatureVector, side: Side) -> Prediction | None:
        started = time.perf_counter()
        prediction = self.served.scorer.predict(vector, side)
        if prediction is not None:  # a skipped vector never reached the model
            INFERENCE_SECONDS.labels().observe(time.perf_counter() - started)
        return prediction


class WorkerMetrics(Collector):
    """What this process's agents counted and hold, read at scrape time; the app adds what it builds."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.flows: list[Counted] = []
        self.models: list[ServedModel] = []
        self.decide_states: list[Callable[[], list[DecideStep]]] = []  # the owned partitions' decide states
        registry.register(self)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield from self._flows()
        yield from self._models()
        yield from trading_families([step for states in self.decide_states for step in states()])

    def _flows(self) -> Iterator[CounterMetricFamily]:
        fed = CounterMetricFamily("liqbot_agent_records_in", "Records fed to an agent", labels=("agent", "topic"))
        made = CounterMetricFamily("liqbot_agent_records_out", "Records an agent produced", labels=("agent", "topic"))
        errors = CounterMetricFamily("liqbot_agent_errors", "Records an agent failed on (dead-lettered)",
                                     labels=("agent",))
        for flow in list(self.flows):
            for family, counts in ((fed, dict(flow.fed)), (made, dict(flow.made))):
                for topic, count in sorted(counts.items()):
                    family.add_metric([flow.name, topic], float(count))
            errors.add_metric([flow.name], float(flow.errors))
        yield from (fed, made, errors)

    def _models(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        info = GaugeMetricFamily("liqbot_model_info", "The model version served (1)", labels=("version",))
        failures = CounterMetricFamily("liqbot_model_load_failures",
                                       "Refreshes whose new CURRENT model could not be served (the old one stays)")
        for served in list(self.models):
            info.add_metric([served.version], 1.0)
        if self.models:
            failures.add_metric([], float(sum(served.counts["refused"] for served in list(self.models))))
        yield from (info, failures)


WORKER = WorkerMetrics()
