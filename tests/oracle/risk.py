"""The test oracle of the compiled per-symbol risk state (`core/src/risk.rs`, `liqbot_core.SymbolRisk`): the Python
class the decide step folded every market record into before it was compiled, kept so that tests prove the
compiled one says the same and holds the same. Tests only; the product never imports this.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from decision.ledger import Outcome
from decision.risk import RiskLimits, TimedRecord
from schemas.records import Liquidation
from tests.oracle.windows import WindowSums

__all__ = ["SymbolRisk"]

_NS_PER_MS = 1_000_000


@dataclass
class SymbolRisk:
    """Per-symbol state: the heartbeat (newest record time) and the circuit breaker."""

    liquidations: WindowSums  # liquidation notional over the spike window
    heartbeat_ns: int | None = None
    heartbeat_lost_until_ns: int = -1
    paused_until_ns: int = -1
    pause_reason: str | None = None
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def for_limits(cls, limits: RiskLimits) -> SymbolRisk:
        return cls(WindowSums(limits.breaker_spike_window_ms * _NS_PER_MS, 1))

    def observe(self, record: TimedRecord, limits: RiskLimits) -> str | None:
        """Fold any record of the symbol; returns a cancel-all reason when a rule has just tripped."""
        ts_ns = record.ts_event_ns
        reasons = [self.heartbeat_lost(ts_ns, limits)]
        self.heartbeat_ns = ts_ns if self.heartbeat_ns is None else max(ts_ns, self.heartbeat_ns)
        self.liquidations.expire(self.heartbeat_ns)
        if isinstance(record, Liquidation):  # a late one counts at the newest time, as in the features
            self.liquidations.add(self.heartbeat_ns, (float(record.bankruptcy_price) * float(record.size),))
            spike, threshold = self.liquidations.sums[0], limits.spike_notional(record.symbol)
            if spike >= threshold:
                reasons.append(self._pause(ts_ns, limits, f"liquidation spike: {spike:,.0f} within "
                                           f"{limits.breaker_spike_window_ms} ms (limit {threshold:,.0f})"))
        found = [r for r in reasons if r is not None]
        return "; ".join(found) if found else None

    def heartbeat_lost(self, now_ns: int, limits: RiskLimits) -> str | None:
        """When nothing arrived for longer than the timeout: start the cool-down and say why (dead-man switch)."""
        if self.heartbeat_ns is None or now_ns - self.heartbeat_ns <= limits.heartbeat_timeout_ms * _NS_PER_MS:
            return None
        self.heartbeat_lost_until_ns = max(self.heartbeat_lost_until_ns, now_ns + limits.heartbeat_cooldown_ms
                                           * _NS_PER_MS)
        self.counts["heartbeat_lost"] += 1
        return f"heartbeat lost: no record for {(now_ns - self.heartbeat_ns) // _NS_PER_MS} ms"

    def on_outcome(self, outcome: Outcome, limits: RiskLimits) -> str | None:
        """A closed order that lost abnormally much pauses the symbol; returns the reason when it did."""
        if outcome.net_return is None or outcome.net_return > -limits.breaker_loss_return:
            return None
        return self._pause(outcome.ts_event_ns, limits, f"abnormal loss: {outcome.net_return:.2%} on "
                                                       f"{outcome.intent.client_order_id}")

    def _pause(self, ts_ns: int, limits: RiskLimits, reason: str) -> str:
        self.paused_until_ns = max(self.paused_until_ns, ts_ns + limits.breaker_pause_ms * _NS_PER_MS)
        self.pause_reason = reason
        self.counts["circuit_breaker"] += 1
        return f"circuit breaker: {reason}"
