"""The lag exporter's metrics (docs/metrics.md): a prometheus_client Collector over the monitor's latest snapshot.

Names and labels of kafka-lag-exporter for offsets and lags, plus Burrow's statuses and the event-time lag. Series
exist only for what the latest round saw: a group or partition that went away disappears, and after a failed round
every lag series disappears until a round succeeds (as kafka-lag-exporter evicts on failure), while
`liqbot_lag_poll_errors_total` counts the failures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from streams.lag.evaluator import Status
from streams.lag.tracker import LagSnapshot

__all__ = ["GROUP_STATUSES", "PARTITION_STATUSES", "LagCollector"]

GROUP_STATUSES = (Status.OK, Status.WARN, Status.ERR, Status.NOTFOUND)
PARTITION_STATUSES = (Status.OK, Status.WARN, Status.STOP, Status.STALL, Status.REWIND, Status.NOTFOUND)
_POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_GP = ("cluster_name", "group", "topic", "partition")
_G = ("cluster_name", "group")
_TP = ("cluster_name", "topic", "partition")


class LagCollector(Collector):
    """Register once (`REGISTRY.register(collector)`); `update` after each round, `failed` after a failed one.

    `liqbot_build_info` comes from `streams.metrics.serve_metrics`, as for every process."""

    def __init__(self, cluster_name: str) -> None:
        self.cluster_name = cluster_name
        self._lock = threading.Lock()
        self._snapshot: LagSnapshot | None = None
        self.poll_seconds = Histogram("liqbot_lag_poll_seconds", "One round of reading offsets from the cluster",
                                      buckets=_POLL_BUCKETS, registry=None)
        self.poll_errors = Counter("liqbot_lag_poll_errors", "Rounds that failed (the broker was unreachable)",
                                   registry=None)

    def update(self, snapshot: LagSnapshot, round_s: float) -> None:
        with self._lock:
            self._snapshot = snapshot
        self.poll_seconds.observe(round_s)

    def failed(self) -> None:
        with self._lock:
            self._snapshot = None
        self.poll_errors.inc()

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self._snapshot
        yield from self._families(snapshot)

    def _families(self, snapshot: LagSnapshot | None) -> Iterator[Metric]:
        yield from self._partition_families(snapshot)
        yield from self._group_families(snapshot)
        yield from self._log_families(snapshot)
        yield from self.poll_seconds.collect()
        yield from self.poll_errors.collect()

    def _partition_families(self, snapshot: LagSnapshot | None) -> Iterator[Metric]:
        offset = GaugeMetricFamily("kafka_consumergroup_group_offset", "Last committed offset", labels=_GP)
        lag = GaugeMetricFamily("kafka_consumergroup_group_lag", "High watermark minus committed offset", labels=_GP)
        lag_s = GaugeMetricFamily("kafka_consumergroup_group_lag_seconds",
                                  "Time lag from interpolated (high watermark, time) samples", labels=_GP)
        event = GaugeMetricFamily("liqbot_consumergroup_event_lag_seconds",
                                  "Event time of the newest record minus that of the last consumed one",
                                  labels=("group", "topic", "partition"))
        status = GaugeMetricFamily("liqbot_consumergroup_partition_status", "Burrow's status of each partition",
                                   labels=("group", "topic", "partition", "status"))
        for group in snapshot.groups if snapshot else ():
            for p in group.partitions:
                where = [self.cluster_name, p.group, p.topic, str(p.partition)]
                offset.add_metric(where, p.committed)
                lag.add_metric(where, p.lag)
                lag_s.add_metric(where, p.lag_s)
                if p.event_lag_s is not None:  # topics whose records carry no event time get no series
                    event.add_metric(where[1:], p.event_lag_s)
                for s in PARTITION_STATUSES:
                    status.add_metric([*where[1:], s.name], 1.0 if p.status == s else 0.0)
        yield from (offset, lag, lag_s, event, status)

    def _group_families(self, snapshot: LagSnapshot | None) -> Iterator[Metric]:
        max_lag = GaugeMetricFamily("kafka_consumergroup_group_max_lag", "The group's largest partition lag",
                                    labels=_G)
        max_lag_s = GaugeMetricFamily("kafka_consumergroup_group_max_lag_seconds", "The group's largest time lag",
                                      labels=_G)
        sum_lag = GaugeMetricFamily("kafka_consumergroup_group_sum_lag", "The group's total lag", labels=_G)
        status = GaugeMetricFamily("liqbot_consumergroup_status", "Burrow's status of the group",
                                   labels=("group", "status"))
        for group in snapshot.groups if snapshot else ():
            where = [self.cluster_name, group.group]
            max_lag.add_metric(where, group.max_lag)
            max_lag_s.add_metric(where, group.max_lag_s)
            sum_lag.add_metric(where, group.total_lag)
            for s in GROUP_STATUSES:
                status.add_metric([group.group, s.name], 1.0 if group.status == s else 0.0)
        yield from (max_lag, max_lag_s, sum_lag, status)

    def _log_families(self, snapshot: LagSnapshot | None) -> Iterator[Metric]:
        latest = GaugeMetricFamily("kafka_partition_latest_offset", "High watermark", labels=_TP)
        earliest = GaugeMetricFamily("kafka_partition_earliest_offset", "Log start offset", labels=_TP)
        for (topic, partition), log_offsets in sorted(snapshot.log_offsets.items()) if snapshot else ():
            latest.add_metric([self.cluster_name, topic, str(partition)], log_offsets.latest)
            earliest.add_metric([self.cluster_name, topic, str(partition)], log_offsets.earliest)
        yield from (latest, earliest)
