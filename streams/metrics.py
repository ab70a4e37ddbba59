"""Prometheus metrics of everything that moves records (one registry, the default one)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from liqbot import __version__
from liqbot.errors import LiqbotError

__all__ = [
    "BUILD_INFO",
    "DEAD_LETTERS",
    "EXCHANGE_TO_RECEIVE",
    "FRAMES_RECEIVED",
    "GAPS",
    "MARKET_LAST_EVENT",
    "PARSE_ERRORS",
    "PRODUCE_FAILURES",
    "RECEIVE_TO_PRODUCE",
    "RECONNECTS",
    "RECORDS_CONSUMED",
    "RECORDS_PRODUCED",
    "SERDE_ERRORS",
    "SINK_COMMITS",
    "SINK_INSERT_SECONDS",
    "SINK_RETRIES",
    "SINK_ROWS",
    "HotCounter",
    "HotCounterChild",
    "HotHistogram",
    "HotHistogramChild",
    "LastEventTimes",
    "expose_error_series",
    "serve_metrics",
]


class HotHistogram(Collector):
    """A labelled histogram for a per-frame loop: one bisect and two adds per observation, no lock.

    prometheus_client's Histogram took about 2 us per observation (a lock and a Python scan of the buckets),
    a fifth of a frame's whole ingest budget. One thread writes a child; a scrape reads a copy.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], buckets: tuple[float, ...],
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.bounds = buckets
        self._children: dict[tuple[str, ...], HotHistogramChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> HotHistogramChild:
        child = self._children.get(values)
        if child is None:  # not setdefault: that would build a child on every call
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = HotHistogramChild(self.bounds)
        return child

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            counts, total = child.counts[:], child.sum
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(list(values), buckets, total)
        yield family


class HotHistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le semantics: value == bound counts in that bucket
        self.sum += value


class HotCounter(Collector):
    """A labelled counter for a per-frame or per-record loop: one add per increment, no lock.

    prometheus_client's Counter takes a lock and a label lookup, about 1 us per record in the producer's
    delivery callback. One thread writes a child; a scrape reads its value.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...],
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.name, self.documentation, self.labelnames = name.removesuffix("_total"), documentation, labelnames
        self._children: dict[tuple[str, ...], HotCounterChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> HotCounterChild:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}_total takes labels {self.labelnames}, got {values}")
            child = self._children[values] = HotCounterChild()
        return child

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), float(child.value))
        yield family


class HotCounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class LastEventTimes(Collector):
    """A gauge of the newest exchange time (ns in, Unix seconds out) per symbol, set by a hot loop with one store.

    `track(venue, kind)` hands the loop a plain dict of symbol to ns that it writes; a scrape reads a copy.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.name, self.documentation = name, documentation
        self._tracked: dict[tuple[str, str], dict[str, int]] = {}
        registry.register(self)

    def track(self, venue: str, kind: str) -> dict[str, int]:
        return self._tracked.setdefault((venue, kind), {})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=("venue", "symbol", "kind"))
        for (venue, kind), newest in list(self._tracked.items()):
            for symbol, ts_ns in list(newest.items()):
                family.add_metric([venue, symbol, kind], ts_ns / 1e9)
        yield family


def serve_metrics(port: int, process: str, addr: str = "127.0.0.1") -> None:
    """Serve this process's metrics on `addr`:`port` (`/metrics`), named by `liqbot_build_info{process}`."""
    BUILD_INFO.labels(process, __version__).set(1)
    try:
        start_http_server(port, addr=addr)
    except OSError as exc:
        raise LiqbotError(f"cannot serve metrics on {addr}:{port}: {exc}") from exc


_LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

RECORDS_PRODUCED = HotCounter("liqbot_records_produced_total", "Records acknowledged by Kafka", ("topic",))
PRODUCE_FAILURES = Counter("liqbot_produce_failures_total", "Records Kafka failed to take", ["topic"])
# a HotCounter: the agents' reader counts every record it decodes
RECORDS_CONSUMED = HotCounter("liqbot_records_consumed_total", "Records consumed and decoded", ("topic",))
SERDE_ERRORS = Counter("liqbot_serde_errors_total", "Records that failed to encode or decode", ["topic", "stage"])
DEAD_LETTERS = Counter("liqbot_dead_letters_total", "Inputs sent to the dead-letter topic", ["source", "stage"])
FRAMES_RECEIVED = HotCounter("liqbot_frames_received_total", "Venue frames received, by what they were",
                             ("venue", "kind"))
PARSE_ERRORS = Counter("liqbot_parse_errors_total", "Venue frames that failed to parse", ["venue"])
RECONNECTS = Counter("liqbot_reconnects_total", "Venue connections re-established", ["venue"])
GAPS = Counter("liqbot_book_gaps_total", "Order-book sequence gaps (book dropped until a snapshot)", ["venue"])
EXCHANGE_TO_RECEIVE = HotHistogram("liqbot_exchange_to_receive_seconds", "Exchange message time to local receive",
                                   ("venue",), buckets=_LATENCY_BUCKETS_S)
RECEIVE_TO_PRODUCE = HotHistogram("liqbot_receive_to_produce_seconds", "Local receive to handed to the producer",
                                  ("venue",), buckets=_LATENCY_BUCKETS_S)
MARKET_LAST_EVENT = LastEventTimes("liqbot_market_last_event_timestamp_seconds",
                                   "Exchange time of the newest record produced (Unix seconds)")
BUILD_INFO = Gauge("liqbot_build_info", "Which process this is (1)", ["process", "version"])
SINK_ROWS = Counter("liqbot_sink_rows_total", "Rows the sink wrote to ClickHouse", ["table"])
SINK_RETRIES = Counter("liqbot_sink_insert_retries_total", "Inserts ClickHouse refused or failed, retried")
SINK_COMMITS = Counter("liqbot_sink_commits_total", "Offset commits after ClickHouse took the rows")
SINK_INSERT_SECONDS = HotHistogram("liqbot_sink_insert_seconds", "One insert into ClickHouse, retries included",
                                   ("table",), buckets=(*_LATENCY_BUCKETS_S, 5.0, 10.0, 30.0))


def expose_error_series(venue: str, topics: Sequence[str]) -> None:
    """An ingest's error counters at 0 from its start: a series that first appears with its first error shows "no
    data" on a dashboard until then, and `rate()` misses that first error."""
    for counter in (PARSE_ERRORS, RECONNECTS, GAPS):
        counter.labels(venue)
    for topic in topics:
        PRODUCE_FAILURES.labels(topic)
