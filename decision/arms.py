"""The (delta, T) arms the model scores and the strategy chooses among, and where their limit price sits."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from itertools import product

from schemas.records import PositionSide, Side

__all__ = ["Arm", "ArmGrid", "entry_side", "limit_price"]


@dataclass(frozen=True, slots=True)
class Arm:
    """A post-only limit `delta_bps` inside mid, resting `valid_for_ms` before it is cancelled."""

    delta_bps: float
    valid_for_ms: int

    def key(self) -> str:
        """Stable text id (posteriors, client order ids, metrics labels)."""
        return f"{self.delta_bps:g}bps/{self.valid_for_ms}ms"


@dataclass(frozen=True, kw_only=True)
class ArmGrid:
    """Every arm is one delta and one T; the grid's fingerprint ties a model to it."""

    deltas_bps: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0)
    valid_for_ms: tuple[int, ...] = (10_000, 60_000)

    def arms(self) -> tuple[Arm, ...]:
        """All arms, deltas outer, T inner (the model's output order)."""
        return tuple(Arm(d, t) for d, t in product(self.deltas_bps, self.valid_for_ms))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def entry_side(liquidated: PositionSide) -> Side:
    """Long liquidations are forced sells that push price down: buy inside the wick (and the mirror image)."""
    return "BUY" if liquidated == "LONG" else "SELL"


def limit_price(mid: float, side: Side, delta_bps: float) -> float:
    """mid*(1-delta) for a buy, mid*(1+delta) for a sell; rounding to the tick is the venue adapter's job."""
    offset = delta_bps * 1e-4
    return mid * (1.0 - offset) if side == "BUY" else mid * (1.0 + offset)
