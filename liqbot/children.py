"""The project's own long-running commands as child processes: an agents worker, the sink.

Tests, benchmarks and the main job run the real command an operator runs (not its code in-process), so that its
consumer, producer and the process around them cost and fail as in production, and a SIGKILL is a real one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from liqbot.config import Settings
from liqbot.data import REPO
from liqbot.errors import LiqbotError

__all__ = ["LiqbotProcess", "SinkProcess", "WorkerProcess", "stop_child"]


def stop_child(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal a child and wait for it; one that is still alive after 30 s is killed."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class LiqbotProcess:
    """`liqbot <command>` on the given platform with its own home and log; a context manager that stops it."""

    def __init__(self, settings: Settings, home: Path, command: list[str], *, env: Mapping[str, str] | None = None,
                 verbose: bool = False, log_name: str = "process.log") -> None:
        """`env` adds to the environment (API keys, LIQBOT_CLICKHOUSE_PASSWORD)."""
        self.home = home
        environment = {**os.environ, "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix,
                       "LIQBOT_PARTITIONS": str(settings.kafka.partitions), "LIQBOT_HOME": str(home),
                       "LIQBOT_SERDE": settings.serde.kind, **(env or {})}
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / log_name
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liqbot.cli", *(["-v"] if verbose else []), *command, "--bootstrap",
             settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url],
            cwd=REPO, env=environment, stdout=self._log, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the process and wait for it (killed after 30 s)."""
        stop_child(self.process, sig)
        self._log.close()

    def tail(self, lines: int = 40) -> str:
        return "".join(self.log_path.read_text().splitlines(keepends=True)[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class WorkerProcess(LiqbotProcess):
    """One agents worker (`liqbot agents worker`); its status file says what it owns and did."""

    def __init__(self, settings: Settings, home: Path, *options: str, models: Path | None = None,
                 env: Mapping[str, str] | None = None, verbose: bool = False) -> None:
        """`options` go to the worker's command line (`--live`, ...)."""
        extra = ["--models", str(models)] if models else []
        super().__init__(settings, home, ["agents", "worker", *extra, *options], env=env, verbose=verbose,
                         log_name="worker.log")
        self.status_path = home / "agents" / "status.json"

    def status(self) -> dict[str, Any]:
        """The newest status.json the worker wrote (every second), or an empty one before the first."""
        try:
            status: dict[str, Any] = json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return {"partitions": [], "symbols": {}, "counts": {}, "applied": {}}
        return status

    def wait_for_partitions(self, partitions: int, timeout_s: float = 120.0) -> None:
        """Until the worker owns all `partitions` (its agents are running and assigned)."""
        deadline = time.monotonic() + timeout_s
        while self.status()["partitions"] != list(range(partitions)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise LiqbotError(f"the agents worker did not take its {partitions} partitions "
                                  f"(exit code {self.process.poll()}); its log:\n{self.tail()}")
            time.sleep(0.2)


class SinkProcess(LiqbotProcess):
    """`liqbot sink`: every topic into ClickHouse; `options` go to its command line (`--until-idle 5`, ...)."""

    def __init__(self, settings: Settings, home: Path, *options: str, env: Mapping[str, str] | None = None,
                 verbose: bool = False) -> None:
        super().__init__(settings, home, ["sink", *options], env=env, verbose=verbose, log_name="sink.log")
