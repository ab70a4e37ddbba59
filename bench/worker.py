"""The bare Faust agent the benchmarks compare the real worker (`liqbot.children.WorkerProcess`) with.

The bare agent is Faust's own floor on the same broker (why the agents do not read through Faust's streams): one
agent that does nothing with its messages but count them and time them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import faust

from liqbot.children import stop_child
from liqbot.config import Settings
from liqbot.data import REPO
from liqbot.errors import LiqbotError

__all__ = ["BareAgent", "bare_agent"]

_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


class BareAgent:
    """`bare_agent` in a process of its own, reading `topics` from their start; a context manager that stops it."""

    def __init__(self, settings: Settings, topics: list[str], expected: int, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.ready_path, self.result_path, self.log_path = home / "ready", home / "result.json", home / "bare.log"
        args = [settings.kafka.bootstrap_servers, str(settings.kafka.partitions * len(topics)), str(expected),
                str(home), *topics]
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from bench.worker import bare_agent; bare_agent(sys.argv[1:])", *args],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until every partition is assigned to the agent."""
        self._wait(self.ready_path, timeout_s)

    def result(self, timeout_s: float) -> dict[str, Any]:
        """{messages, seconds from the first to the last, latencies_ns of messages with a `sent_ns` header}."""
        self._wait(self.result_path, timeout_s)
        result: dict[str, Any] = json.loads(self.result_path.read_text())
        return result

    def _wait(self, path: Path, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise LiqbotError(f"the bare Faust agent did not write {path.name}; its log:\n"
                                  f"{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def __enter__(self) -> BareAgent:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        stop_child(self.process, signal.SIGTERM)
        self._log.close()


@dataclass
class _Tally:
    """What the bare agent saw: how many messages, when the first and newest came, latencies from `sent_ns`."""

    messages: int = 0
    first: float = 0.0
    last: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)

    def add(self, headers: Any) -> None:
        now_ns, self.last = time.time_ns(), time.perf_counter()
        self.messages += 1
        if self.messages == 1:
            self.first = self.last
        sent = dict(headers or ()).get("sent_ns")
        if sent is not None:
            self.latencies_ns.append(now_ns - int(sent))

    def result(self) -> dict[str, Any]:
        return {"messages": self.messages, "seconds": self.last - self.first, "latencies_ns": self.latencies_ns}


def bare_agent(argv: list[str]) -> None:
    """Child process of `BareAgent`: a Faust app read like the agents' (from the earliest offset, events not acked
    one by one) with one agent that only counts and times its messages; writes `ready` once assigned and
    `result.json` once it has seen `expected`."""
    bootstrap, partitions, expected, home, *topics = argv
    app = faust.App(f"bench-bare-{os.getpid()}-{time.time_ns()}", broker=f"kafka://{bootstrap}", store="memory://",
                    datadir=str(Path(home) / "faust"), web_enabled=False, consumer_auto_offset_reset="earliest",
                    stream_wait_empty=False)
    tally = _Tally()

    @app.agent(app.topic(*topics, **_RAW), name="bare")
    async def bare(stream: Any) -> None:
        async for event in stream.noack().events():  # as the agents read: events, acknowledged later (here never)
            tally.add(event.message.headers)
            if tally.messages == int(expected):  # written whole, then renamed: the bench reads it once it exists
                (Path(home) / "result.tmp").write_text(json.dumps(tally.result()))
                (Path(home) / "result.tmp").replace(Path(home) / "result.json")

    async def assigned() -> None:
        if len(app.consumer.assignment()) >= int(partitions):
            (Path(home) / "ready").touch()

    app.timer(0.1)(assigned)

    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()
