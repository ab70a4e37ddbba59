"""The lag alert end to end: a real consumer on the real broker, the real `liqbot lag exporter`, a real Prometheus
with the project's lag rules. Stopping the consumer brings `LiqbotConsumerGroupError` to firing in Prometheus' own
alerts API; restarting it resolves the alert.

Records are real top-of-book records of the Bybit capture. The rules' `for:` (2 minutes in production) is cut to
3 s in a copy, so that the test runs in a minute; everything else is the production rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.kafka import broker
from deploy.prometheus import rules, server
from liqbot.children import LiqbotProcess
from schemas.records import TopOfBook
from streams.clients import Clients
from streams.roundtrip import records_from_captures
from tests.streams.lag.test_lag_broker import one_partition  # noqa: F401  (a fixture)
from tests.streams.lag.workload import PacedConsumer, SteadyProducer

ALERT = "LiqbotConsumerGroupError"


@pytest.fixture
def exporter(one_partition: Clients, tmp_path: Path) -> Iterator[int]:  # noqa: F811
    port = broker.free_port()
    with LiqbotProcess(one_partition.settings, tmp_path / "exporter",
                       ["lag", "exporter", "--metrics-port", str(port), "--every", "0.5", "--intervals", "5"],
                       log_name="exporter.log"):
        yield port


def _states(prometheus: server.PrometheusServer, group: str) -> list[str]:
    return [a.state for a in server.alerts(prometheus, ALERT) if a.labels.get("group") == group]


def test_a_stopped_consumer_fires_the_lag_alert_in_prometheus_and_its_restart_resolves_it(
        one_partition: Clients, exporter: int, bybit_capture: Path, tmp_path: Path) -> None:  # noqa: F811
    tops = sorted((r for r in records_from_captures([bybit_capture]).records if isinstance(r, TopOfBook)),
                  key=lambda r: r.ts_event_ns)
    topic = one_partition.topics.name("market.top_of_book")
    group = f"live-alert-{uuid.uuid4().hex[:6]}"
    producer = SteadyProducer(one_partition.producer, topic, tops, rate_per_s=40)
    consumer = PacedConsumer(one_partition.settings.kafka.bootstrap_servers, topic, group)
    lag_rules = rules.with_for([rules.RULES_DIR / "lag.yml"], tmp_path / "rules", "3s")
    producer.start()
    consumer.start()
    try:
        with server.running(tmp_path / "prometheus", {"lag-exporter": [f"127.0.0.1:{exporter}"]},
                            lag_rules) as prometheus:
            status = f'liqbot_consumergroup_status{{group="{group}",status="OK"}}'
            server.wait_until(lambda: [s["value"][1] for s in server.query(prometheus, status)] == ["1"], 60,
                              "the group scraped as OK")
            assert _states(prometheus, group) == []

            consumer.mode = "paused"  # hung: no poll, no commit, still a member
            server.wait_until(lambda: "pending" in _states(prometheus, group) or _states(prometheus, group) ==
                              ["firing"], 60, "the alert pending")
            server.wait_until(lambda: _states(prometheus, group) == ["firing"], 30, "the alert firing")
            firing = next(a for a in server.alerts(prometheus, ALERT) if a.labels.get("group") == group)
            assert firing.labels["severity"] == "page"
            assert firing.annotations["summary"] == f"Consumer group {group} stopped or stalled"
            assert "1 partition(s) STOP" in firing.annotations["description"]
            assert firing.annotations["runbook_url"] == "docs/runbook.md#liqbotconsumergrouperror"

            consumer.close()  # restarted: a new member of the group goes on from the committed offset
            consumer = PacedConsumer(one_partition.settings.kafka.bootstrap_servers, topic, group)
            consumer.start()
            server.wait_until(lambda: _states(prometheus, group) == [], 60, "the alert resolved")
            assert [s["value"][1] for s in server.query(prometheus, status)] == ["1"]
    finally:
        producer.stop.set()
        producer.join(10)
        consumer.close()
