"""Every panel of every provisioned Grafana dashboard returns data from a real Prometheus (Debian's 2.42, loopback)
scraping the project's real processes on the session's real broker and registry (issue 14, section 4).

The processes, each with `--metrics-port`: an agents worker fed the SYNTHETIC wick scenario (training/scenario.py)
with the model fitted on it, which reaches orders, fills, positions and risk refusals; the sink into embedded chDB;
ingest on the loopback Bybit WebSocket peer replaying the real captured frames (the four real allLiquidation frames,
then the real linear capture, paced at 5 ms a frame, with the peer's scripted faults: a garbage frame, a dropped
connection, a skipped book delta); and the lag exporter, every second. One payload on market.trades is no Avro record,
so the dead-letter and serde-error panels show a real rejection; one consumer group reads part of market.trades and
stops, so the lag panels show a partition that is not OK. Prometheus scrapes every second and is up before the
processes, so that it sees their counters move.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from deploy.grafana.dashboards import Query, dashboards, queries, queries_without_data
from deploy.kafka.broker import free_port
from deploy.prometheus import rules, server
from liqbot.children import LiqbotProcess, SinkProcess, WorkerProcess
from liqbot.config import Settings
from schemas.records import Liquidation
from streams.bybit.loopback import Faults, LoopbackBybit
from streams.clients import Clients
from tests.agents.test_metrics import _dead_letter_a_trade
from tests.agents.test_workers import feed
from tests.streams.bybit.test_client import SYMBOLS, frames  # noqa: F401  (`frames`: a fixture)
from training.registry import SCENARIO_REGISTRY
from training.scenario import WickScenario, generate

# Panels allowed to return nothing here: (dashboard uid, panel title, refId) -> why. None: the error counters are
# exposed at 0 from a process's start (`streams.metrics.expose_error_series`).
ALLOWED: dict[tuple[str, str, str], str] = {}

# Grafana's own value at the datasource's 15 s interval (deploy/grafana/dashboards.py), as an operator sees it.
VALUES = {"__rate_interval": "1m"}
DEADLINE_S = 120.0  # for every panel to show data, once the processes run


def _key(query: Query) -> tuple[str, str, str]:
    return (query.dashboard, query.panel, query.ref_id)


def _stopped_group(clients: Clients, count: int) -> str:
    """A real consumer that reads `count` records of market.trades, commits them and leaves: its group is behind."""
    group = f"dashboards-stopped-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": clients.settings.kafka.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([clients.topics.name("market.trades")])
    got, deadline = 0, time.monotonic() + 60
    while got < count and time.monotonic() < deadline:
        got += len(consumer.consume(num_messages=count - got, timeout=0.5))
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == count, f"read {got} of {count} trades"
    return group


def _faults(served: list[str]) -> Faults:
    """The loopback peer's scripted faults, as in tests/streams/bybit/test_client.py: one garbage frame (a parse
    error, dead-lettered), one dropped connection (a reconnect), one skipped BTCUSDT book delta (a sequence gap)."""
    btc_book = [i for i, f in enumerate(served) if '"orderbook.200.BTCUSDT"' in f and '"delta"' in f]
    return Faults(inject_before={100: "\x00\x01 not json"}, drop_after={1200}, skip={btc_book[100]})


@dataclass
class Running:
    prometheus: server.PrometheusServer
    processes: dict[str, LiqbotProcess]  # by Prometheus job name
    prefix: str  # this test's topic prefix, which the project's consumer groups carry too
    stopped_group: str

    def check_alive(self) -> None:
        for job, process in self.processes.items():
            assert process.process.poll() is None, f"{job} exited:\n{process.tail()}"


@pytest.fixture
def running(settings: Settings, clients: Clients, tmp_path: Path, frames: list[str],  # noqa: F811
            peer_in_thread: Callable[[LoopbackBybit], AbstractContextManager[LoopbackBybit]]) -> Iterator[Running]:
    """Prometheus first, then the four processes it scrapes; the worker's input is fed once it owns its partitions,
    so that Prometheus sees the counters move. Everything is stopped by pid on leaving (the reverse order)."""
    ports = {job: free_port() for job in ("agents", "sink", "ingest", "lag-exporter")}
    with ExitStack() as stack:
        prometheus = stack.enter_context(server.running(
            tmp_path / "prometheus", {job: [f"127.0.0.1:{port}"] for job, port in ports.items()}, rules.rule_files()))
        worker = WorkerProcess(settings, tmp_path / "agents", "--metrics-port", str(ports["agents"]),
                               "--models", str(SCENARIO_REGISTRY))
        started: dict[str, LiqbotProcess] = {
            "agents": worker,
            "sink": SinkProcess(settings, tmp_path / "sink", "--metrics-port", str(ports["sink"])),
            "lag-exporter": LiqbotProcess(settings, tmp_path / "lag", [
                "lag", "exporter", "--metrics-port", str(ports["lag-exporter"]), "--every", "1"], log_name="lag.log"),
        }
        for process in started.values():
            stack.enter_context(process)  # leaving stops it: SIGTERM to its pid, SIGKILL after 30 s
        worker.wait_for_partitions(settings.kafka.partitions)
        # the scenario (January 2026) before ingest's real frames (later): each partition in event-time order
        scenario = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900,
                                         bursts=4))
        # in two parts, scrapes apart, each with half the liquidations: decisions all made before Prometheus first
        # sampled their histogram never show an increase (a rate of 0, a NaN quantile: empty latency panels)
        records = list(scenario.records)  # in event-time order
        liquidations = [r.ts_event_ns for r in records if isinstance(r, Liquidation)]
        middle = liquidations[len(liquidations) // 2]
        feed(settings, [r for r in records if r.ts_event_ns < middle])
        time.sleep(3)
        feed(settings, [r for r in records if r.ts_event_ns >= middle])
        _dead_letter_a_trade(settings)
        stopped = _stopped_group(clients, 100)
        ws = stack.enter_context(peer_in_thread(LoopbackBybit(frames, _faults(frames), frame_interval_s=0.005)))
        started["ingest"] = stack.enter_context(LiqbotProcess(settings, tmp_path / "ingest", [
            "ingest", "--symbols", ",".join(SYMBOLS), "--depth", "200", "--kline", "--url", ws.url, "--no-rest",
            "--metrics-port", str(ports["ingest"])], log_name="ingest.log"))
        yield Running(prometheus, started, settings.kafka.topic_prefix, stopped)


def test_every_dashboard_panel_returns_data_from_the_live_processes(running: Running) -> None:
    """Polled until every query has returned series, and numbers, at some scrape of this run (a panel over the
    dashboard's time range shows them): a quantile over a window without observations is NaN, which Grafana
    draws as nothing, so a NaN-only answer does not count as data."""
    found = [q for dashboard in dashboards().values() for q in queries(dashboard)]
    every = {_key(q): q for q in found}
    assert len(every) == len(found) > 50, "two queries of one dashboard share a panel title and refId"
    with_series: set[tuple[str, str, str]] = set()
    with_numbers: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + DEADLINE_S
    while with_numbers | set(ALLOWED) != set(every) and time.monotonic() < deadline:
        running.check_alive()
        quiet = {_key(q) for q in queries_without_data(running.prometheus.url, values=VALUES)}
        with_series |= set(every) - quiet
        with_numbers |= {key for key in with_series - with_numbers if _has_a_number(running.prometheus, every[key])}
        time.sleep(1)
    running.check_alive()
    up = {s["metric"]["job"]: s["value"][1] for s in server.query(running.prometheus, "up")}
    assert up == dict.fromkeys(running.processes, "1")
    statuses = {s["metric"]["group"]: s["metric"]["status"]
                for s in server.query(running.prometheus, "liqbot_consumergroup_status == 1")}
    assert {group for group in statuses if group.startswith(running.prefix)} == {
        running.prefix + "liqbot-agents", running.prefix + "liqbot-sink"}  # the lag panels' groups, as $group lists
    assert statuses[running.stopped_group] == "ERR"  # behind and gone: what "Partitions not OK" shows
    never = {key: every[key].promql(VALUES) for key in set(every) - with_series - set(ALLOWED)}
    assert never == {}, "panels without data; a wrong query is fixed in deploy/grafana/dashboards/"
    assert {key: every[key].promql(VALUES) for key in with_series - with_numbers} == {}, "panels of NaN only"
    # the allow-list stays honest: an entry that is no query, or whose panel showed data, is taken off it
    assert set(ALLOWED) <= set(every) - with_series


def _has_a_number(prometheus: server.PrometheusServer, query: Query) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in server.query(prometheus, query.promql(VALUES)))
