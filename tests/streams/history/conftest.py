"""The stores the sink tests run against: embedded chDB (queried through the running sink) and the HTTP path."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from liqbot.children import SinkProcess
from liqbot.config import Settings
from streams.history.query import endpoint_file, run_query
from streams.history.store import StoreSettings


@dataclass
class HistoryStore:
    """Where a test's sink writes: the options that point `liqbot sink` there, and SQL on it from the test."""

    kind: str
    home: Path
    sink_options: list[str] = field(default_factory=list)
    url: str | None = None

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
        while self.url is None and self._serving() != process.process.pid:
            if process.process.poll() is not None or time.monotonic() > deadline:
                process.stop()
                raise AssertionError(f"the sink did not start serving SQL; its log:\n{process.tail()}")
            time.sleep(0.1)
        return process

    def _serving(self) -> int | None:
        """The pid of the live sink serving SQL on this store (a killed one leaves its file behind)."""
        try:
            pid = int(json.loads(endpoint_file(self.settings).read_text())["pid"])
            os.kill(pid, 0)
        except (FileNotFoundError, ProcessLookupError, json.JSONDecodeError):
            return None
        return pid

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


@pytest.fixture(params=["chdb"])
def history_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    """Each store kind the sink supports, fresh for the test."""
    yield HistoryStore(kind=request.param, home=tmp_path / "home")
