"""A real Prometheus (Debian's package) on a loopback port scrapes a test-local exporter of a SYNTHETIC gauge:
one of the project's alert rules goes pending, then firing in Prometheus' own alerts API, then resolves."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from deploy.kafka.broker import free_port
from deploy.process import is_running
from deploy.prometheus import rules, server

ALERT = "LiqbotConsumerGroupError"
GROUP = "liqbot-agents"


class SyntheticLagExporter:
    """SYNTHETIC: the lag exporter's group-status gauge, set by the test, served on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.status = Gauge("liqbot_consumergroup_status", "SYNTHETIC group status for this test",
                            ["group", "status"], registry=self.registry)
        self.port = free_port()
        self.httpd, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.set("OK")

    def set(self, current: str) -> None:
        for status in ("OK", "WARN", "ERR"):
            self.status.labels(GROUP, status).set(1 if status == current else 0)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def exporter() -> Iterator[SyntheticLagExporter]:
    made = SyntheticLagExporter()
    yield made
    made.close()


def _states(prom: server.PrometheusServer) -> list[str]:
    return [alert.state for alert in server.alerts(prom, ALERT)]


def test_a_project_rule_goes_pending_then_firing_then_resolves(exporter: SyntheticLagExporter,
                                                                tmp_path: Path) -> None:
    # the production rule with `for: 2m` shortened to 3 s; everything else as deployed
    quick = rules.with_for([rules.RULES_DIR / "lag.yml"], tmp_path / "rules", "3s")
    with server.running(tmp_path / "prometheus", {"lag-exporter": [f"127.0.0.1:{exporter.port}"]}, quick) as prom:
        server.wait_until(lambda: [s["value"][1] for s in server.query(prom, 'up{job="lag-exporter"}')] == ["1"],
                          20, "the first scrape of the exporter")
        server.wait_until(lambda: bool(server.query(prom, f'liqbot_consumergroup_status{{group="{GROUP}"}}')),
                          10, "the exporter's series")
        assert _states(prom) == []

        exporter.set("ERR")
        server.wait_until(lambda: _states(prom) == ["pending"], 15, f"{ALERT} to be pending")
        pending_at = time.monotonic()
        server.wait_until(lambda: _states(prom) == ["firing"], 15, f"{ALERT} to fire")
        assert time.monotonic() - pending_at >= 2.0, "fired before its `for:` had passed"
        (alert,) = server.alerts(prom, ALERT)
        assert alert.labels["group"] == GROUP and alert.labels["severity"] == "page"
        assert alert.labels["job"] == "lag-exporter" and alert.labels["instance"] == f"127.0.0.1:{exporter.port}"
        assert alert.annotations["summary"] == f"Consumer group {GROUP} stopped or stalled"
        assert alert.annotations["runbook_url"] == "docs/runbook.md#liqbotconsumergrouperror"
        # the template's own query ran in this server: no partition statuses here, so it lists none
        assert alert.annotations["description"] == (
            f"Group {GROUP} has been ERR for 2 minutes: its consumer is dead, hung or stuck on a record.")

        exporter.set("OK")
        server.wait_until(lambda: _states(prom) == [], 15, f"{ALERT} to resolve")
        assert server.query(prom, f'ALERTS{{alertname="{ALERT}"}}') == []
    assert not is_running(prom.pid, str(prom.binary)), "the server outlived its context"


def test_the_production_rules_keep_their_for_durations(tmp_path: Path) -> None:
    quick = rules.with_for([rules.RULES_DIR / "lag.yml"], tmp_path, "3s")
    original, copy = rules.load([rules.RULES_DIR / "lag.yml"]), rules.load(quick)
    assert [r.expr for r in original] == [r.expr for r in copy]
    assert "for: 2m" in (rules.RULES_DIR / "lag.yml").read_text()
    assert "for: 3s" in quick[0].read_text() and "for: 2m" not in quick[0].read_text()


def test_start_fails_clearly_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(server.PrometheusError, match="exited during start-up"):
            server.start(tmp_path, {}, [], port=port, timeout_s=20)
