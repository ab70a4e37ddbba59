"""`liqbot sink --metrics-port` on the real broker and chDB: the rows it wrote, its inserts and commits, scraped."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from deploy.kafka.broker import free_port
from liqbot import __version__
from liqbot.config import Settings
from liqbot.data import BYBIT_CAPTURE
from streams.capture_replay import capture_records
from streams.clients import Clients
from tests.metrics_contract import by_label, drift, scrape_until, value


@pytest.mark.parametrize("history_store", ["chdb"], indirect=True)
def test_the_sink_serves_the_rows_it_wrote(settings: Settings, clients: Clients, history_store: Any) -> None:
    records = capture_records(BYBIT_CAPTURE, "bybit-linear")
    clients.topics.ensure(clients.admin())
    specs = {spec.schema: spec for spec in clients.topics.specs}
    clients.producer.send_all([(clients.topics.name(specs[r.SCHEMA]), r, r.kafka_key()) for r in records])
    clients.producer.drain()
    expected = {table: float(n) for table, n in Counter(specs[r.SCHEMA].table for r in records).items()}
    port = free_port()
    with history_store.sink(settings, "--metrics-port", str(port)) as sink:
        families = scrape_until(port, lambda f: by_label(f, "liqbot_sink_rows_total", "table") == expected)
        problems = drift(port, "Sink")
        assert sink.process.poll() is None, sink.tail()
    assert problems == []
    assert value(families, "liqbot_build_info", process="sink", version=__version__) == 1
    inserts = by_label(families, "liqbot_sink_insert_seconds_count", "table")
    assert set(inserts) == set(expected) and all(n >= 1 for n in inserts.values())
    assert value(families, "liqbot_sink_commits_total") >= 1
    assert value(families, "liqbot_sink_insert_retries_total") == 0
