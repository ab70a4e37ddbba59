"""`liqbot kafka up|down|status` starts the real kafka.Kafka JVM and the registry; a restart keeps everything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from deploy import local
from deploy.kafka.broker import base64_uuid, free_port
from liqbot.config import BrokerSettings, Settings
from schemas.records import Trade
from streams.clients import Clients
from streams.roundtrip import records_from_captures


def _free_run(n: int) -> int:
    """A port p with p..p+n-1 all free on 127.0.0.1."""
    while True:
        base = free_port()
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue


def _liqbot(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQBOT_HOME": str(home), "LIQBOT_SERDE": "confluent"}
    return subprocess.run([sys.executable, "-m", "liqbot.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_up_down_up_keeps_topics_records_and_schemas(tmp_path: Path, bybit_capture: Path) -> None:
    port = _free_run(4)
    home = tmp_path / "platform"
    settings = Settings(broker=BrokerSettings(home=home))
    try:
        up = _liqbot(home, "kafka", "up", "--port", str(port))
        assert up.returncode == 0, up.stderr
        assert f"bootstrap 127.0.0.1:{port}" in up.stdout and "schema registry up" in up.stdout
        platform = local.status(settings)
        assert platform is not None and platform.registry is not None
        cmd = _cmdline(platform.broker.pid)
        assert "kafka.Kafka" in cmd and Path(cmd[0]).name == "java"  # the real broker JVM, nothing else

        clients = Clients.connect(local.connect_settings(settings, platform))
        assert set(clients.topics.ensure(clients.admin()).values()) == {"created"}
        trades = [r for r in records_from_captures([bybit_capture]).records if isinstance(r, Trade)][:25]
        topic = clients.topics.name("market.trades")
        for trade in trades:
            clients.producer.send(topic, trade, key=trade.symbol)
        assert clients.producer.flush(30) == 0

        down = _liqbot(home, "kafka", "down")
        assert down.stdout.splitlines() == ["schema registry down", "kafka down"]
        assert not Path(f"/proc/{platform.broker.pid}").exists() or not _cmdline(platform.broker.pid)[0]
        status = _liqbot(home, "kafka", "status")
        assert status.returncode == 1 and status.stdout.startswith("kafka: not running")

        assert _liqbot(home, "kafka", "up", "--port", str(port)).returncode == 0
        status = _liqbot(home, "kafka", "status")
        assert status.returncode == 0 and f"  {topic} (6 partitions)" in status.stdout.splitlines()
        again = local.status(settings)
        assert again is not None and again.broker.pid != platform.broker.pid
        fresh = Clients.connect(local.connect_settings(settings, again))  # new serde: ids resolved from the registry
        consumer = fresh.consumer([topic], f"g-{uuid.uuid4().hex[:8]}")
        back = [r.record for r in consumer.records(idle_timeout_s=10)]
        consumer.close()
        assert sorted(back, key=repr) == sorted(trades, key=repr)
        assert consumer.dead_lettered == 0
    finally:
        _liqbot(home, "kafka", "down")
    assert local.status(settings) is None


def test_second_up_reports_the_running_broker_and_status_when_down(tmp_path: Path) -> None:
    status = _liqbot(tmp_path, "kafka", "status")
    assert status.returncode == 1 and status.stdout == f"kafka: not running (home {tmp_path})\n"
    down = _liqbot(tmp_path, "kafka", "down")
    assert down.stdout == "schema registry was not running\nkafka was not running\n"


@pytest.mark.parametrize("serde", ["avro", ""])
def test_bad_serde_setting_is_a_clear_error(tmp_path: Path, serde: str) -> None:
    env = {**os.environ, "LIQBOT_HOME": str(tmp_path), "LIQBOT_SERDE": serde}
    run = subprocess.run([sys.executable, "-m", "liqbot.cli", "kafka", "status"], env=env, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 2
    assert run.stderr == f"error: LIQBOT_SERDE={serde!r}: use 'confluent' or 'single-object'\n"


def test_port_taken_by_another_process_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = _liqbot(tmp_path, "kafka", "up", "--port", str(port))
    assert up.returncode == 2
    assert up.stderr.endswith(f"error: port {port} on 127.0.0.1 is in use (another broker?); "
                              "choose another with --port\n")
    assert local.status(Settings(broker=BrokerSettings(home=tmp_path))) is None


def test_cluster_ids_never_look_like_an_option() -> None:
    """A random id starting with "-" made `kafka-storage format -t <id>` fail (seen once in CI)."""
    ids = [base64_uuid() for _ in range(3000)]  # about 47 of them would start with "-" without the redraw
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
