"""Benchmarks: `liqbot bench <name>` prints a table, then ONE JSON line, and writes it to bench/results/."""

from __future__ import annotations

import importlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from liqbot.config import Settings
from liqbot.errors import LiqbotError

__all__ = ["BENCHMARKS", "NO_KAFKA", "machine", "percentile_ms", "report", "run_benchmark"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("ingest", "serde", "inference", "e2e", "agents", "sink", "replay")
NO_KAFKA = ("inference", "replay")  # benchmarks that run without a broker: `liqbot bench` starts none for them
_results_dir = RESULTS_DIR


def run_benchmark(name: str, argv: list[str], settings: Settings, results_dir: Path = RESULTS_DIR) -> int:
    if name not in BENCHMARKS:
        raise LiqbotError(f"no benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    global _results_dir  # noqa: PLW0603 (one run per process: where report() writes)
    _results_dir = results_dir
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(argv, settings))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "os": platform.platform()}


def percentile_ms(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in milliseconds."""
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def report(name: str, rows: list[tuple[str, str]], figures: dict[str, Any]) -> None:
    """Print the table, write the JSON to bench/results/<name>.json, and print the JSON as the last line."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    result = {"benchmark": name, **figures,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    _results_dir.mkdir(parents=True, exist_ok=True)
    (_results_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
