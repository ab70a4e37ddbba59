"""The stores the sink tests run against: embedded chDB (queried through the running sink) and the HTTP path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from liqbot.children import SinkProcess
from liqbot.config import Settings
from streams.history.query import run_query
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
        store = StoreSettings(path=self.home / "clickhouse", url=self.url)
        out = run_query(store, sql, "JSONCompactEachRow")
        return [json.loads(line) for line in out.decode().splitlines() if line]

    def sink(self, settings: Settings, *options: str) -> SinkProcess:
        return SinkProcess(settings, self.home, *self.sink_options, *options)


@pytest.fixture(params=["chdb"])
def history_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    """Each store kind the sink supports, fresh for the test."""
    yield HistoryStore(kind=request.param, home=tmp_path / "home")
