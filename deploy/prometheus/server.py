"""A real Prometheus on 127.0.0.1 for tests and local use: own port, own storage, our rules; stopped by pid."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.kafka.broker import free_port
from deploy.process import is_running, spawn, stop_pid
from deploy.prometheus.install import tools
from liqbot.errors import LiqbotError

__all__ = ["Alert", "PrometheusError", "PrometheusServer", "alerts", "config", "query", "running", "start", "stop",
           "wait_until"]


class PrometheusError(LiqbotError):
    """The server did not start, or answered a query with an error."""


@dataclass(frozen=True)
class PrometheusServer:
    pid: int
    port: int
    home: Path
    binary: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "prometheus.log"


@dataclass(frozen=True)
class Alert:
    """One active alert as `/api/v1/alerts` reports it (resolved alerts are not listed there)."""

    name: str
    state: str  # "pending" or "firing"
    labels: dict[str, str]
    annotations: dict[str, str]


def config(targets: Mapping[str, Sequence[str]], rule_files: Sequence[Path], interval_s: float = 1.0) -> str:
    """prometheus.yml scraping each job's `host:port` targets and evaluating rules every `interval_s`."""
    every = f"{int(interval_s * 1000)}ms"
    content = {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "rule_files": [str(path.resolve()) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(hosts)}]}
                           for job, hosts in targets.items()],
    }
    return json.dumps(content, indent=2)  # JSON is YAML: no YAML writer needed at run time


def start(home: Path, targets: Mapping[str, Sequence[str]], rule_files: Sequence[Path], *,
          port: int | None = None, binary: Path | None = None, interval_s: float = 1.0,
          timeout_s: float = 30.0) -> PrometheusServer:
    """Start Prometheus with its config and TSDB under `home`, and wait until it is ready."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "prometheus.yml").write_text(config(targets, rule_files, interval_s))
    binary = binary or tools().prometheus
    port = port or free_port()
    cmd = [str(binary), f"--config.file={home / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{port}",
           f"--storage.tsdb.path={home / 'data'}", "--log.level=warn"]
    pid = spawn(cmd, home / "prometheus.log", home)
    server = PrometheusServer(pid=pid, port=port, home=home, binary=binary)
    try:
        _wait_ready(server, timeout_s)
    except PrometheusError:
        stop(server)
        raise
    return server


def stop(server: PrometheusServer, timeout_s: float = 30.0) -> bool:
    """SIGTERM by pid (SIGKILL after `timeout_s`); False when it was not running."""
    return stop_pid(server.pid, str(server.binary), timeout_s)


@contextmanager
def running(home: Path, targets: Mapping[str, Sequence[str]], rule_files: Sequence[Path],
            **options: Any) -> Iterator[PrometheusServer]:
    """`start`, then `stop` on leaving, whatever happened inside."""
    server = start(home, targets, rule_files, **options)
    try:
        yield server
    finally:
        stop(server)


def query(server: PrometheusServer, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector: `[{"metric": {...}, "value": [ts, "v"]}, ...]`."""
    data = _get(server, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    result: list[dict[str, Any]] = data["result"]
    return result


def alerts(server: PrometheusServer, name: str | None = None) -> list[Alert]:
    """The pending and firing alerts, or only those named `name`."""
    found = [Alert(name=raw["labels"]["alertname"], state=raw["state"], labels=raw["labels"],
                   annotations=raw["annotations"]) for raw in _get(server, "/api/v1/alerts")["alerts"]]
    return [alert for alert in found if name is None or alert.name == name]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    """Poll `check` until it holds; PrometheusError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise PrometheusError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


def _get(server: PrometheusServer, path: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as reply:
            body: dict[str, Any] = json.load(reply)
    except urllib.error.HTTPError as exc:  # a bad query is a 400 with Prometheus' error in the body
        raise PrometheusError(f"GET {path}: {exc.code} {exc.read().decode(errors='replace')[:500]}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"GET {path}: {body.get('error', body)}")
    data: dict[str, Any] = body["data"]
    return data


def _wait_ready(server: PrometheusServer, timeout_s: float) -> None:
    def ready() -> bool:
        if not is_running(server.pid, str(server.binary)):
            tail = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
            raise PrometheusError(f"prometheus exited during start-up; {server.log}:\n{tail}")
        try:
            with urllib.request.urlopen(server.url + "/-/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:  # refused while it starts, 503 while the TSDB opens
            return False

    wait_until(ready, timeout_s, f"prometheus on {server.url} to be ready")
