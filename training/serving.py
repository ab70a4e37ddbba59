"""The model an agent serves, and what happens when it cannot be loaded.

At start-up there is no fallback: no loadable, matching model means no scorer, and the agent halts with the error
(it must not trade on nothing). Afterwards `refresh` follows `CURRENT`: a new model that fails to load or was
trained for another spec, grid or labels is refused, counted and logged, and the current one keeps serving.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from decision.arms import ArmGrid
from decision.feature_spec import FeatureSpec
from decision.orders import ExitRule, Fees
from decision.scoring import ModelMismatchError, Scorer
from training.onnx_model import ModelLoadError
from training.registry import ModelRegistry

__all__ = ["ServedModel"]

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """A `Scorer` on the registry's CURRENT model; construction raises when there is none to serve."""

    registry: ModelRegistry = field(default_factory=ModelRegistry)
    spec: FeatureSpec = field(default_factory=FeatureSpec)
    grid: ArmGrid = field(default_factory=ArmGrid)
    exit_rule: ExitRule = field(default_factory=ExitRule)
    fees: Fees = field(default_factory=Fees)
    counts: Counter[str] = field(default_factory=Counter)  # reloaded, refused
    pinned: str | None = None  # this version, never CURRENT's (a backtest's `--model`): `refresh` keeps it
    scorer: Scorer = field(init=False)

    def __post_init__(self) -> None:
        self.scorer = self._scorer(self.pinned or self.registry.current())

    def _scorer(self, version: str) -> Scorer:
        return Scorer(self.registry.load(version), spec=self.spec, grid=self.grid, exit_rule=self.exit_rule,
                      fees=self.fees)

    @property
    def version(self) -> str:
        return self.scorer.card.version

    def refresh(self) -> bool:
        """Serve CURRENT if it changed and can be served; True when the model was replaced."""
        if self.pinned is not None:
            return False
        try:
            version = self.registry.current()
            if version == self.version:
                return False
            scorer = self._scorer(version)
        except (ModelLoadError, ModelMismatchError) as exc:
            self.counts["refused"] += 1
            log.error("model not replaced, still serving %s: %s", self.version, exc)
            return False
        scorer.counts = self.scorer.counts  # skip and score counts run on across models
        self.scorer = scorer
        self.counts["reloaded"] += 1
        log.info("now serving model %s", version)
        return True
