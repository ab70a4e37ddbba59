"""Garbage-collection pauses of the worker, timed: they stop the reader as a snapshot does (status.json, "gc")."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GcPauses"]


@dataclass
class _Generation:
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0


@dataclass
class GcPauses:
    """Counts and times collections per generation from `gc.callbacks` while installed."""

    generations: dict[int, _Generation] = field(default_factory=dict)
    _started: float = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        generation = self.generations.setdefault(int(info["generation"]), _Generation())
        generation.count += 1
        generation.total_s += seconds
        generation.max_s = max(generation.max_s, seconds)

    def report(self) -> dict[str, dict[str, float]]:
        return {f"gen{n}": {"count": g.count, "mean_ms": round(g.total_s / g.count * 1e3, 2),
                            "max_ms": round(g.max_s * 1e3, 2)}
                for n, g in sorted(self.generations.items())}
