"""`liqbot agents worker` as a process of its own, on a given broker and topic prefix: start, status, stop.

The benchmarks run the real worker (the command an operator runs), not the agents in-process, so that Faust,
its consumer and the agents' producer cost what they cost in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from liqbot.config import Settings
from liqbot.data import REPO
from liqbot.errors import LiqbotError

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """One worker with its own home (its status file, Faust data and log); a context manager that stops it."""

    def __init__(self, settings: Settings, home: Path, *, models: Path | None = None) -> None:
        self.home = home
        self.status_path = home / "agents" / "status.json"
        env = {**os.environ, "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix,
               "LIQBOT_PARTITIONS": str(settings.kafka.partitions), "LIQBOT_HOME": str(home)}
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "worker.log"
        self._log = self.log_path.open("w")
        extra = ["--models", str(models)] if models else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liqbot.cli", "agents", "worker", "--bootstrap", settings.kafka.bootstrap_servers,
             "--registry", settings.serde.registry_url, *extra],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)

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

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the worker and wait for it (killed after 30 s)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()

    def tail(self, lines: int = 40) -> str:
        return "".join(self.log_path.read_text().splitlines(keepends=True)[-lines:])

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
