"""Pauses of the reader thread, timed for status.json: state snapshots and garbage collections stop it alike."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.metrics import HotHistogramChild

__all__ = ["GcPauses", "Pauses"]


@dataclass
class Pauses:
    """How many pauses of one kind, and their mean and longest; each also to a histogram when given one."""

    histogram: HotHistogramChild | None = None
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)
        if self.histogram is not None:
            self.histogram.observe(seconds)

    def report(self) -> dict[str, float]:
        mean_ms = self.total_s / self.count * 1e3 if self.count else 0.0
        return {"count": self.count, "mean_ms": round(mean_ms, 2), "max_ms": round(self.max_s * 1e3, 2)}


@dataclass
class GcPauses:
    """Collections per generation, timed from `gc.callbacks` while installed."""

    histogram: Callable[[int], HotHistogramChild | None] = lambda generation: None  # a generation's histogram
    generations: dict[int, Pauses] = field(default_factory=dict)
    _started: float = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        elapsed_s, generation = time.perf_counter() - self._started, int(info["generation"])
        pauses = self.generations.get(generation)
        if pauses is None:
            pauses = self.generations[generation] = Pauses(self.histogram(generation))
        pauses.add(elapsed_s)

    def report(self) -> dict[str, dict[str, float]]:
        return {f"gen{n}": pauses.report() for n, pauses in sorted(self.generations.items())}
