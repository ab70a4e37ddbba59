"""Decision logic has no I/O: importing all of it loads no Kafka, Faust, ClickHouse, socket or HTTP library."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

DECISION = Path(__file__).resolve().parents[2] / "decision"
FORBIDDEN = ("confluent_kafka", "faust", "clickhouse_connect", "chdb", "websockets", "aiohttp", "urllib.request",
             "http.client", "socket", "onnxruntime")


def test_importing_every_decision_module_loads_no_io_library() -> None:
    modules = [f"decision.{p.stem}" for p in sorted(DECISION.glob("*.py")) if p.stem != "__init__"]
    assert "decision.features" in modules
    code = (f"import importlib, json, sys; [importlib.import_module(m) for m in {modules!r}]; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN] == []


def test_no_decision_module_reads_the_wall_clock() -> None:
    clock_calls = {"time", "time_ns", "monotonic", "perf_counter", "now", "utcnow", "today"}
    found = []
    for path in sorted(DECISION.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in clock_calls and isinstance(node.value, ast.Name) \
                    and node.value.id in {"time", "datetime", "date"}:
                found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    assert found == []
