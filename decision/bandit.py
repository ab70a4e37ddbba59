"""Thompson sampling over the arms: per arm, a Normal posterior over how far realised reward falls from the model's.

The reward of a decision is its realised net return on notional (0 when the order expired unfilled); the model
predicts fill_probability * expected_net_return for it. Each arm keeps a conjugate Normal posterior (known noise)
over the mean residual, realised minus predicted, with the prior centred at 0: with no evidence the sampled
reward is centred on the model's own prediction, and evidence that the model is too optimistic (or too
pessimistic) for an arm moves that arm's draws. Draws are counter-based (sha256 of the decision, the arm and its
posterior -> a uniform -> the inverse Normal CDF), so a replay or a restart draws exactly the same numbers, with
no dependence on a library's generator stream (numpy's are not guaranteed stable across releases).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

__all__ = ["ArmPosterior", "BanditConfig", "Posteriors", "uniform"]

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True, kw_only=True)
class BanditConfig:
    """Both in units of net return on notional, per decision."""

    prior_sd: float = 0.0005  # how wrong the model may be about an arm's mean reward (5 bps) before any evidence
    reward_sd: float = 0.004  # noise of one decision's realised reward (stop-loss/take-profit of 60 bps, fills)


@dataclass
class ArmPosterior:
    """Sufficient statistics of one arm: how many rewards, and the sum of their residuals."""

    n: int = 0
    residual_sum: float = 0.0

    def mean_sd(self, config: BanditConfig) -> tuple[float, float]:
        """Posterior mean and standard deviation of the arm's mean residual."""
        precision = 1.0 / config.prior_sd**2 + self.n / config.reward_sd**2
        return self.residual_sum / config.reward_sd**2 / precision, 1.0 / math.sqrt(precision)


def uniform(*parts: str) -> float:
    """A number in (0, 1) that depends only on `parts`: the first 64 bits of their sha256."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2.0**64


@dataclass
class Posteriors:
    """Every arm's posterior for one (venue, symbol): per-symbol state."""

    arms: dict[str, ArmPosterior] = field(default_factory=dict)

    def draw(self, arm_key: str, seed: str, config: BanditConfig) -> float:
        """One Thompson draw of the arm's mean residual, a pure function of (seed, arm, its posterior)."""
        arm = self.arms.get(arm_key, ArmPosterior())
        mean, sd = arm.mean_sd(config)
        u = uniform(seed, arm_key, str(arm.n), repr(arm.residual_sum))
        return mean + sd * _STANDARD_NORMAL.inv_cdf(u)

    def update(self, arm_key: str, residual: float) -> None:
        """A decision on this arm ended: realised reward minus the model's predicted reward."""
        if not math.isfinite(residual):
            raise ValueError(f"residual of arm {arm_key} is {residual}: a posterior must not learn a NaN")
        arm = self.arms.setdefault(arm_key, ArmPosterior())
        arm.n += 1
        arm.residual_sum += residual

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready state (floats survive JSON exactly: repr round-trips)."""
        return {key: {"n": a.n, "residual_sum": a.residual_sum} for key, a in sorted(self.arms.items())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Posteriors:
        return cls({key: ArmPosterior(int(v["n"]), float(v["residual_sum"])) for key, v in data.items()})
