"""docs/metrics.md and the metrics the code declares agree, names and types (the processes' own tests check what
each one serves and feeds: tests/agents/test_metrics.py, tests/streams/bybit/test_live.py,
tests/streams/history/test_sink_metrics.py)."""

from __future__ import annotations

from prometheus_client import REGISTRY

import agents.app  # noqa: F401  (declares the agents worker's metrics)
import streams.history.sink  # the sink's
import streams.ingest  # noqa: F401  (ingest's)
from tests.metrics_contract import documented

PROCESSES = ("Ingest", "Agents worker", "Sink")


def _declared() -> dict[str, str]:
    """Every liqbot metric this process declares, as the doc names it (counters with `_total`), and its type."""
    out = {}
    for family in REGISTRY.collect():
        if family.name.startswith("liqbot_"):
            out[family.name + ("_total" if family.type == "counter" else "")] = family.type
    return out


def test_the_doc_lists_the_sections_and_types_the_contract_needs() -> None:
    doc = documented()
    assert {"Every process", *PROCESSES, "Lag exporter"} <= set(doc)
    assert doc["Every process"]["liqbot_build_info"] == "gauge"
    assert doc["Agents worker"]["liqbot_agent_process_seconds"] == "histogram"
    assert doc["Agents worker"]["liqbot_records_consumed_total"] == "counter"  # a cell naming several metrics
    assert doc["Every process"]["python_info"] == ""  # prometheus-client's own: no type to check


def test_every_declared_metric_is_documented_with_its_type() -> None:
    doc = documented()
    listed = {name: kind for section in ("Every process", *PROCESSES) for name, kind in doc[section].items()}
    declared = _declared()
    assert {name: kind for name, kind in declared.items() if listed.get(name) != kind} == {}
    missing = {name for section in ("Every process", *PROCESSES) for name in doc[section]
               if name.startswith("liqbot_") and name not in declared}
    assert missing == set()
