"""Fetch, format, start, probe and stop one `kafka.Kafka` JVM (broker + controller) on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from deploy.maven import fetch
from deploy.process import is_running, ports_in_use, read_state, spawn, stop_pid
from liqbot.errors import LiqbotError

__all__ = ["JVM_PERFORMANCE_OPTS", "BrokerError", "BrokerState", "fetch_libs", "free_port", "start", "status", "stop",
           "wait_ready"]

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J2 = HERE / "log4j2.properties"
MAIN_CLASS = "kafka.Kafka"
LOGS_HINT = "<home>/logs/server.log and <home>/logs/stdout.log"
# ZGC: G1's young collections stopped the broker for 7-11 ms every few seconds even with Kafka's own settings
# (MaxGCPauseMillis=20), the tail of every hop here; ZGC's pauses stay under a millisecond (one plain hop at
# 1,000 msg/s: p999 10-15 ms -> ~5 ms, max 13-25 -> 7-8 ms; docs/benchmarks.md). docker-compose.kafka.yml too.
JVM_PERFORMANCE_OPTS = ("-XX:+UseZGC", "-Djava.awt.headless=true")


class BrokerError(LiqbotError):
    """The local broker could not be fetched, started, reached or stopped."""


@dataclass(frozen=True)
class BrokerState:
    """What `up` wrote to `<home>/broker.json`: enough for `status` and `down`."""

    pid: int
    port: int
    controller_port: int
    home: str
    cluster_id: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_libs(cache_dir: Path, say: Callable[[str], None] = print) -> Path:
    """The broker's runtime classpath (`mvn dependency:copy-dependencies`), fetched once per pom.xml."""
    goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
    return fetch(POM, goal, "outputDirectory", cache_dir=cache_dir, name="kafka-libs", say=say)


def _server_properties(home: Path, port: int, controller_port: int) -> str:
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
        f"log.dirs={home / 'data'}",
        "num.partitions=6",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "",
    ])


def _java(libs: Path, home: Path, heap_mb: int, *args: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("`java` is not on PATH; Kafka 4.1 needs Java 17 or newer")
    return [
        java, f"-Xms{min(256, heap_mb)}m", f"-Xmx{heap_mb}m", *JVM_PERFORMANCE_OPTS,
        f"-Dlog4j2.configurationFile={LOG4J2}", f"-Dkafka.logs.dir={home / 'logs'}",
        "-cp", f"{libs}/*", *args,
    ]


def _format(libs: Path, home: Path, heap_mb: int) -> str:
    cluster_id = base64_uuid()
    cmd = _java(libs, home, heap_mb, "kafka.tools.StorageTool", "format", "--standalone",
                "-t", cluster_id, "-c", str(home / "server.properties"))
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise BrokerError(f"formatting KRaft storage failed: {run.stdout}{run.stderr}")
    return cluster_id


def base64_uuid() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding, as `random-uuid` prints."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # one id in 64 starts with "-", which the storage tool's parser takes for an option (Kafka's own
        # Uuid.randomUuid draws again for the same reason)
        if not cluster_id.startswith("-"):
            return cluster_id


def start(home: Path, libs: Path, *, port: int, controller_port: int, heap_mb: int = 768,
          timeout_s: float = 60.0) -> BrokerState:
    """Start the broker (formatting storage on first use) and wait until it answers metadata requests."""
    current = status(home)
    if current is not None:
        raise BrokerError(f"a broker already runs from {home} (pid {current.pid}, port {current.port}); "
                          "`liqbot kafka down` first")
    home = home.resolve()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    previous = _read_state(home)
    if previous is not None and (previous.port, previous.controller_port) != (port, controller_port):
        # The KRaft voter set stores the controller endpoint: keep the ports the storage was formatted with.
        port, controller_port = previous.port, previous.controller_port
    busy = ports_in_use(port, controller_port)
    if busy:
        raise BrokerError(f"port {busy[0]} on 127.0.0.1 is in use (another broker?); choose another with --port")
    (home / "server.properties").write_text(_server_properties(home, port, controller_port))
    cluster_id = previous.cluster_id if previous and (home / "data" / "meta.properties").exists() else None
    if cluster_id is None:
        cluster_id = _format(libs, home, heap_mb)
    pid = spawn(_java(libs, home, heap_mb, MAIN_CLASS, str(home / "server.properties")),
                home / "logs" / "stdout.log", home)
    state = BrokerState(pid=pid, port=port, controller_port=controller_port, home=str(home),
                        cluster_id=cluster_id)
    (home / "broker.json").write_text(json.dumps(asdict(state), indent=2))
    try:
        wait_ready(state.bootstrap, timeout_s, pid)
    except BrokerError:
        stop(home)
        raise
    return state


def wait_ready(bootstrap: str, timeout_s: float, pid: int | None = None) -> None:
    """Block until the broker answers a metadata request with itself as a broker."""
    # log_level 0: refused connections are expected while the JVM starts; do not print them.
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000, "log_level": 0})
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if pid is not None and not is_running(pid, MAIN_CLASS):
            raise BrokerError(f"the broker exited during start-up; see {LOGS_HINT}")
        try:
            if admin.list_topics(timeout=1.0).brokers:
                return
        except Exception as exc:  # KafkaException while the listener is not up yet
            last_error = str(exc)
        time.sleep(0.2)
    raise BrokerError(f"broker at {bootstrap} did not answer metadata within {timeout_s:.0f}s: {last_error}")


def _read_state(home: Path) -> BrokerState | None:
    state = read_state(home / "broker.json")
    return BrokerState(**state) if state else None


def status(home: Path) -> BrokerState | None:
    """The running broker of `home`, or None (a stale pid of another process does not count)."""
    state = _read_state(home.resolve())
    if state is None or not is_running(state.pid, MAIN_CLASS):
        return None
    return state


def stop(home: Path, timeout_s: float = 30.0) -> bool:
    """Stop the broker by its pid; False when none was running."""
    state = status(home)
    return state is not None and stop_pid(state.pid, MAIN_CLASS, timeout_s)
