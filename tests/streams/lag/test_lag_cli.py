"""`liqbot lag` as a user runs it: its offset lag equals Kafka's own `kafka-consumer-groups --describe`, its table,
its exporter, and errors that say what to do next."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from deploy.kafka import broker
from deploy.maven import fetch
from liqbot import __version__
from liqbot.config import BrokerSettings, Settings
from schemas.records import Trade
from streams.clients import Clients
from streams.roundtrip import records_from_captures
from tests.metrics_contract import by_label, drift, scrape_until, value

CACHE = BrokerSettings().cache_dir
TOOLS_POM = Path(__file__).parent / "kafka_tools" / "pom.xml"


@pytest.fixture(scope="module")
def kafka_tools_classpath() -> str:
    """The broker's classpath plus kafka-tools, where ConsumerGroupCommand has lived since Kafka 3.7."""
    libs = broker.fetch_libs(CACHE)
    tools = fetch(TOOLS_POM, ["dependency:copy-dependencies", "-DincludeScope=runtime"], "outputDirectory",
                  cache_dir=CACHE, name="kafka-tools")
    (tools_jar,) = tools.glob("kafka-tools-[0-9]*.jar")
    return f"{libs}/*:{tools_jar}"


@pytest.fixture
def groups(clients: Clients, bybit_capture: Path) -> dict[str, int]:
    """347 real trades on 3 partitions; one group read 150 of them, one all: group -> records read."""
    topic = clients.topics.name("market.trades")
    trades = [r for r in records_from_captures([bybit_capture]).records if isinstance(r, Trade)]
    for trade in trades:
        clients.producer.send(topic, trade, key=trade.symbol)
    clients.producer.drain(30)
    tag = uuid.uuid4().hex[:6]
    read = {f"lag-cli-part-{tag}": 150, f"lag-cli-all-{tag}": len(trades)}
    for group, count in read.items():
        _consume_and_commit(clients.settings.kafka.bootstrap_servers, topic, group, count)
    return read


def _consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got, deadline = 0, time.monotonic() + 30
    while got < count and time.monotonic() < deadline:
        got += len(consumer.consume(num_messages=count - got, timeout=0.5))
    consumer.commit(asynchronous=False)
    consumer.close()
    assert got == count


def _liqbot(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix}
    remote = ("--bootstrap", settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url)
    return subprocess.run([sys.executable, "-m", "liqbot.cli", "lag", *remote, *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _kafka_describe(classpath: str, bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, int, int]]:
    """(topic, partition) -> (current offset, log end offset, lag) as Kafka's own tool prints them."""
    run = subprocess.run(["java", "-cp", classpath, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                          "--bootstrap-server", bootstrap, "--describe", "--group", group],
                         capture_output=True, text=True, timeout=120, check=True)
    lines = [line.split() for line in run.stdout.splitlines() if line.strip()]
    header = next(i for i, cols in enumerate(lines) if cols[:2] == ["GROUP", "TOPIC"])
    at = {name: lines[header].index(name) for name in ("TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")}
    return {(cols[at["TOPIC"]], int(cols[at["PARTITION"]])):
            (int(cols[at["CURRENT-OFFSET"]]), int(cols[at["LOG-END-OFFSET"]]), int(cols[at["LAG"]]))
            for cols in lines[header + 1:]}


def test_offset_lag_equals_kafkas_own_consumer_group_tool(
        clients: Clients, groups: dict[str, int], kafka_tools_classpath: str) -> None:
    asked = [arg for group in groups for arg in ("--group", group)]
    run = _liqbot(clients.settings, *asked, "--json", "--samples", "2", "--every", "0.2")
    assert run.returncode == 0, run.stderr
    assert "lag: round 2/2: 2 groups" in run.stderr
    report = {g["group"]: g for g in json.loads(run.stdout)["groups"]}
    assert set(report) == set(groups)
    for group, read in groups.items():
        ours = {(p["topic"], p["partition"]): (p["committed"], p["high_watermark"], p["lag"])
                for p in report[group]["partitions"]}
        kafkas = _kafka_describe(kafka_tools_classpath, clients.settings.kafka.bootstrap_servers, group)
        assert ours == kafkas
        assert sum(lag for _, _, lag in ours.values()) == report[group]["total_lag"]
        assert sum(committed for committed, _, _ in ours.values()) == read
        assert all(p["event_lag_s"] is not None for p in report[group]["partitions"])  # trades carry event time
    part, done = groups
    assert report[part]["total_lag"] > 0 and report[done]["total_lag"] == 0  # the comparison covers a lagging group


def test_the_table_is_aligned_and_ends_with_the_group_statuses(clients: Clients, groups: dict[str, int]) -> None:
    part, done = groups
    run = _liqbot(clients.settings, "--group", part, "--group", done, "--samples", "1")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["group", "topic", "partition", "committed", "high", "watermark", "lag", "lag_s",
                                "event_lag_s", "status"]
    rows = [line.split() for line in lines[1:lines.index("")]]
    assert {r[0] for r in rows} == {part, done}
    # a consumer that read part of the log and left is STOP (one commit, silent since); one that read it all is OK
    assert {r[-1] for r in rows if r[0] == part} == {"STOP"} and {r[-1] for r in rows if r[0] == done} == {"OK"}
    assert sum(int(r[3]) for r in rows if r[0] == part) == 150  # committed offsets: what it read
    # one sample: kafka-lag-exporter's time lag needs two, except at the newest high watermark (zero)
    assert {r[6] for r in rows if r[0] == part} == {"-"} and {r[6] for r in rows if r[0] == done} == {"0.000"}
    statuses = {line.split()[0]: line.split()[1:] for line in lines[lines.index("") + 2:]}
    part_lag = sum(int(r[5]) for r in rows if r[0] == part)
    assert statuses[part][:2] == ["ERR", str(part_lag)] and part_lag > 0 and statuses[done][:2] == ["OK", "0"]
    # the columns line up: every row's lag ends, and its status starts, where the header's do
    table = lines[:lines.index("")]
    spans = [[m.span() for m in re.finditer(r"\S+", line)] for line in table]
    assert len({spans[0][6][1]} | {row[5][1] for row in spans[1:]}) == 1  # header: "high watermark" is two words
    assert len({row[-1][0] for row in spans}) == 1


def test_the_exporter_serves_the_groups_until_interrupted(clients: Clients, groups: dict[str, int]) -> None:
    port = broker.free_port()
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": clients.settings.kafka.topic_prefix}
    cmd = [sys.executable, "-m", "liqbot.cli", "lag", "exporter", "--bootstrap",
           clients.settings.kafka.bootstrap_servers, "--registry", clients.settings.serde.registry_url,
           "--metrics-port", str(port), "--every", "0.3"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = next(iter(groups))
    try:
        families = scrape_until(
            port, lambda f: by_label(f, "kafka_consumergroup_group_sum_lag", "group").get(part, 0) > 0, timeout_s=30)
        lags = by_label(families, "kafka_consumergroup_group_lag", "group")
        assert by_label(families, "kafka_consumergroup_group_sum_lag", "group")[part] == lags[part]
        assert by_label(families, "kafka_consumergroup_group_offset", "group")[part] == 150
        assert value(families, "liqbot_consumergroup_status", group=part, status="ERR") == 1  # stopped, behind
        assert value(families, "liqbot_build_info", process="lag-exporter", version=__version__) == 1
        assert drift(port, "Lag exporter") == []
    finally:
        proc.send_signal(signal.SIGINT)
        # Ctrl-C lands when the round's librdkafka call returns: on a loaded host that can be two 10 s timeouts
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"metrics on http://127.0.0.1:{port}/metrics" in stderr


def test_an_unknown_group_is_named_with_the_known_ones(clients: Clients, groups: dict[str, int]) -> None:
    run = _liqbot(clients.settings, "--group", "no-such-group")
    assert run.returncode == 2
    error = run.stderr.splitlines()[-1]
    assert error.startswith("error: unknown consumer group no-such-group at ")
    assert all(group in error for group in groups) and "without --group" in error


def test_an_unreachable_broker_says_what_to_do(settings: Settings) -> None:
    port = broker.free_port()
    run = subprocess.run([sys.executable, "-m", "liqbot.cli", "lag", "--bootstrap", f"127.0.0.1:{port}",
                          "--timeout", "1"], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    error = run.stderr.splitlines()[-1]
    assert error.startswith(f"error: Kafka at 127.0.0.1:{port} did not answer")
    assert error.endswith("is it up? (`liqbot kafka status`; another cluster: --bootstrap HOST:PORT)")


def test_exporter_without_a_port_asks_for_one(settings: Settings) -> None:
    run = subprocess.run([sys.executable, "-m", "liqbot.cli", "lag", "exporter", "--bootstrap",
                          settings.kafka.bootstrap_servers], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stderr == "error: `liqbot lag exporter` serves metrics: give --metrics-port PORT\n"


def test_without_a_local_broker_it_says_how_to_start_one(tmp_path: Path) -> None:
    env = {**os.environ, "LIQBOT_HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "liqbot.cli", "lag"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 2
    assert run.stderr == (f"error: no Kafka to read: the local broker of {tmp_path} is not running (start it: "
                          "`liqbot kafka up`), or point at one with --bootstrap HOST:PORT\n")
