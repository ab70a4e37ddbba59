"""The stores the sink tests run against: embedded chDB (queried through the running sink) and the HTTP path; and a
store the backtests read, the real captures and the SYNTHETIC wick scenario landed in it without Kafka."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from liqbot.children import SinkProcess, stop_child
from liqbot.config import Settings
from liqbot.pipeline_command import CAPTURES
from streams.capture_replay import capture_records
from streams.history.load import land
from streams.history.query import endpoint, run_query
from streams.history.store import PASSWORD_ENV, StoreSettings, apply_migrations, connect
from training.scenario import WickScenario, generate

# The http kind's ClickHouse server: a test double speaking its HTTP interface over chDB (see its docstring).
SHIM = Path(__file__).resolve().with_name("chdb_http.py")


@dataclass
class HistoryStore:
    """Where a test's sink writes: the options that point `liqbot sink` there, and SQL on it from the test."""

    kind: str
    home: Path
    sink_options: list[str] = field(default_factory=list)
    url: str | None = None
    shim_port: int | None = None  # the http kind's server (chdb_http.py), for its faults

    def rows(self, sql: str) -> list[list[Any]]:
        """The result rows (JSON values; Decimals as text, `toString` them for exact comparisons)."""
        if self.url is None and self._serving() is None:
            # opening chDB here would lock the store against the next sink (one process per directory)
            raise AssertionError(f"no running sink serves SQL on {self.home}: {sql}")
        out = run_query(self.settings, sql, "JSONCompactEachRow")
        return [json.loads(line) for line in out.decode().splitlines() if line]

    def sink(self, settings: Settings, *options: str) -> SinkProcess:
        """A running `liqbot sink`, once it answers SQL (before that, a query here would take chDB's lock)."""
        process = SinkProcess(settings, self.home, *self.sink_options, *options)
        deadline = time.monotonic() + 120
        while not self._ready(process):
            if process.process.poll() is not None or time.monotonic() > deadline:
                process.stop()
                raise AssertionError(f"the sink did not start serving SQL; its log:\n{process.tail()}")
            time.sleep(0.1)
        return process

    def _ready(self, process: SinkProcess) -> bool:
        """chDB: the sink serves SQL; a server: the sink has applied the migrations (the tables are there)."""
        if self.url is None:
            return self._serving() == process.process.pid
        return "migrations applied now" in process.tail(200)

    def outage(self, seconds: float, mode: str = "drop") -> None:
        """ClickHouse out for the next `seconds`, then back by itself (this returns at once). http: the server drops
        every connection unanswered (`mode` "503": answers 503; "lost_reply": runs each statement, then drops)."""
        if self.shim_port is None:
            raise NotImplementedError(f"an outage of the {self.kind} store")
        fault = f"http://127.0.0.1:{self.shim_port}/_fault?mode={mode}&seconds={seconds}"
        with urllib.request.urlopen(urllib.request.Request(fault, method="POST"), timeout=10) as reply:
            assert reply.status == 200

    def _serving(self) -> int | None:
        """The pid of the live sink serving SQL on this store (a killed one leaves its file behind)."""
        found = endpoint(self.settings)
        if found is None:
            return None
        try:
            os.kill(found[0], 0)
        except ProcessLookupError:
            return None
        return found[0]

    @property
    def settings(self) -> StoreSettings:
        return StoreSettings(path=self.home / "clickhouse", url=self.url)

    def wait(self, sql: str, expected: int, sink: SinkProcess, timeout_s: float = 120.0) -> int:
        """Polls `sql` (one count) until it reaches `expected`; fails with the sink's log when it does not."""
        deadline = time.monotonic() + timeout_s
        while (got := int(self.rows(sql)[0][0])) < expected:
            if sink.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{sql}: {got} of {expected}; the sink's log:\n{sink.tail()}")
            time.sleep(0.2)
        return got


@pytest.fixture(params=["chdb", "http"])
def history_store(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[HistoryStore]:
    """Each store kind the sink supports, fresh for the test: embedded chDB, and a server over HTTP."""
    if request.param == "chdb":
        yield HistoryStore(kind=request.param, home=tmp_path / "home")
        return
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv(PASSWORD_ENV, password)  # for the sink, `liqbot sql` and `rows`, as an operator sets it
    with _clickhouse_http(tmp_path / "server") as port:
        url = f"http://liqbot@127.0.0.1:{port}/default"
        store = HistoryStore(kind="http", home=tmp_path / "home", sink_options=["--clickhouse-url", url], url=url,
                             shim_port=port)
        yield store
    leaked = [log.name for log in [*store.home.glob("*.log"), tmp_path / "server" / "server.log"]
              if log.exists() and password in log.read_text(errors="replace")]
    assert not leaked, f"the ClickHouse password is in {leaked}"


@contextmanager
def _clickhouse_http(home: Path) -> Iterator[int]:
    """chdb_http.py on a fresh directory, user liqbot, password from the env; its port once it answers, then stopped."""
    home.mkdir(parents=True)
    port_file = home / "port"
    with (home / "server.log").open("w") as log:
        server = subprocess.Popen([sys.executable, str(SHIM), "--path", str(home / "data"), "--port-file",
                                   str(port_file), "--user", "liqbot", "--password-env", PASSWORD_ENV],
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chdb_http.py did not start: {(home / 'server.log').read_text()}")
            time.sleep(0.05)
        port = int(port_file.read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10) as reply:
            assert reply.read() == b"Ok.\n"
        yield port
    finally:
        stop_child(server, signal.SIGTERM)


@dataclass(frozen=True)
class LandedHistory:
    """A chDB store (closed: open it in one process at a time) holding the real captures under 'real.' and the
    SYNTHETIC wick scenario under 'wick.', as the sink would have written them from topics of 6 partitions; and per
    namespace, each (topic, partition)'s records in offset order."""

    path: Path
    sources: dict[str, dict[tuple[str, int], list[Any]]]

    @property
    def settings(self) -> StoreSettings:
        return StoreSettings(path=self.path)


# The wick scenario the agents' worker test runs (tests/agents/test_workers.py): it places, fills and exits orders.
WICK = WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900, bursts=4)
PARTITIONS = 6  # the default of LIQBOT_PARTITIONS


@pytest.fixture(scope="session")
def landed_history(tmp_path_factory: pytest.TempPathFactory) -> LandedHistory:
    """The real captures in the order `liqbot pipeline` produces them, and the scenario, landed once per session."""
    real = [r for path, venue in CAPTURES for r in capture_records(path, venue)]
    path = tmp_path_factory.mktemp("history") / "clickhouse"
    client = connect(StoreSettings(path=path))
    try:
        apply_migrations(client)
        sources = {"real.": land(client, "real.", real, PARTITIONS),
                   "wick.": land(client, "wick.", generate(WICK).records, PARTITIONS)}
    finally:
        client.close()  # chDB opens one directory per process at a time
    return LandedHistory(path, sources)
