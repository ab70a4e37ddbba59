"""The mission's risk rules, each a named check that returns why it refuses (None: it passes).

Every check reads only required inputs and is written so that a missing or NaN input refuses: a rule that cannot
be evaluated never passes (the prototype's risk checks read fields that were never set). Gates (kill switch,
drawdown halt, heartbeat, circuit breaker) are about the account or the symbol and, when one refuses, every
resting order must go too (`cancel_all_reason`); order checks are about one proposed order.

State: `AccountRisk` is account-wide (equity, drawdown, exposure of every symbol, kill switch); `SymbolRisk` is
per (venue, symbol) (heartbeat, circuit breaker), compiled (`core/src/risk.rs`: every market record is folded into
it). Times are event times in ns; a live timer may pass its clock as `now_ns` to `SymbolRisk.heartbeat_lost`
(exchange and local clocks agree to far less than the timeout).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from liqbot_core import SymbolRisk

from decision.features import MarketRecord
from decision.ledger import Exposure
from schemas.records import FundingRate, Instrument, OpenInterest, Position, Side

__all__ = [
    "AccountRisk", "Proposal", "Refusal", "RiskLimits", "SymbolKey", "SymbolRisk", "TimedRecord", "cancel_all_reason",
    "check_circuit_breaker", "check_correlated_exposure", "check_drawdown", "check_gates", "check_heartbeat",
    "check_kill_switch", "check_liquidation_buffer", "check_live_orders", "check_max_position", "check_order",
    "drawdown_warning", "gate_refusals", "order_notional", "order_refusals",
]

SymbolKey = tuple[str, str]  # (venue, symbol)
Refusal = tuple[str, str]  # (rule name, why): the names are a fixed set, fit for counting by
TimedRecord = MarketRecord | Instrument | FundingRate | OpenInterest
_NS_PER_MS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class RiskLimits:
    """The mission's numbers; fractions are of account equity unless said otherwise."""

    max_position_fraction: float = 0.10  # live orders of one symbol, resting or filled, gross notional
    drawdown_warn: float = 0.05  # from the peak equity
    drawdown_halt: float = 0.10  # latches until an operator clears it
    leverage: float = 3.0  # isolated margin per position
    maintenance_margin_rate: float = 0.005  # Bybit's first risk-limit tier for BTCUSDT
    min_liquidation_distance: float = 0.20  # liquidation price at least this far from mid, as a fraction of mid
    correlated_groups: tuple[tuple[str, ...], ...] = (("*",),)  # "*" is every symbol: crypto moves together
    max_correlated_fraction: float = 0.25  # same-direction notional summed over a group
    max_live_orders_per_symbol: int = 1
    breaker_loss_return: float = 0.015  # a closed order losing more than this of its notional pauses the symbol
    breaker_spike_window_ms: int = 60_000
    breaker_spike_notional: float = 10_000_000.0  # quote units of liquidations within the window
    breaker_spike_notional_by_symbol: tuple[tuple[str, float], ...] = ()  # overrides of the above
    breaker_pause_ms: int = 600_000
    heartbeat_timeout_ms: int = 10_000  # no record of the symbol for longer: the feed is dead
    heartbeat_cooldown_ms: int = 60_000  # refuse this long after the feed came back (windows are partial)

    def spike_notional(self, symbol: str) -> float:
        return dict(self.breaker_spike_notional_by_symbol).get(symbol, self.breaker_spike_notional)

    def groups_of(self, symbol: str) -> list[tuple[str, ...]]:
        return [g for g in self.correlated_groups if symbol in g or "*" in g]


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """An order before it becomes an intent; every field is required."""

    venue: str
    symbol: str
    side: Side
    price: float
    size: float
    mid: float

    @property
    def key(self) -> SymbolKey:
        return (self.venue, self.symbol)

    @property
    def notional(self) -> float:
        return self.price * self.size


@dataclass
class AccountRisk:
    """Account-wide state: equity from every symbol's newest Position, exposure from every symbol's live orders."""

    starting_equity: float
    pnl: dict[SymbolKey, float] = field(default_factory=dict)  # realised - fees - funding + unrealised
    pnl_ts_ns: dict[SymbolKey, int] = field(default_factory=dict)
    exposure: dict[SymbolKey, Exposure] = field(default_factory=dict)
    peak_equity: float | None = None
    halted: str | None = None
    kill_switch: str | None = None
    counts: Counter[str] = field(default_factory=Counter)

    def equity(self) -> float:
        return self.starting_equity + sum(self.pnl.values())

    def drawdown(self) -> float:
        peak = max(self.peak_equity or self.starting_equity, self.starting_equity)
        return 1.0 - self.equity() / peak

    def on_position(self, position: Position, limits: RiskLimits) -> str | None:
        """Fold a symbol's newest position; returns the halt reason when this one crossed the halt drawdown."""
        key = (position.venue, position.symbol)
        if position.ts_event_ns < self.pnl_ts_ns.get(key, -1):
            self.counts["stale_position"] += 1
            return None
        self.pnl_ts_ns[key] = position.ts_event_ns
        self.pnl[key] = position.realised_pnl - position.fees_paid - position.funding_paid + position.unrealised_pnl
        equity = self.equity()
        if math.isfinite(equity) and equity > (self.peak_equity or -math.inf):
            self.peak_equity = equity
        if self.halted is None and not self.drawdown() < limits.drawdown_halt:
            self.halted = f"drawdown {self.drawdown():.2%} reached the halt level {limits.drawdown_halt:.0%}"
            return self.halted
        return None

    def set_exposure(self, key: SymbolKey, exposure: Exposure) -> None:
        self.exposure[key] = exposure

    def set_kill_switch(self, reason: str | None) -> None:
        """An operator's switch: a reason turns it on (no intents, cancel everything), None turns it off."""
        self.kill_switch = reason

    def clear_halt(self) -> None:
        """An operator resumes trading after a drawdown halt; the peak restarts from today's equity."""
        self.halted, self.peak_equity = None, self.equity()


# -- gates: the account or the symbol may not trade now -------------------------------------------------------


def check_kill_switch(account: AccountRisk) -> str | None:
    return None if account.kill_switch is None else f"kill switch: {account.kill_switch}"


def check_drawdown(account: AccountRisk, limits: RiskLimits) -> str | None:
    if account.halted is not None:
        return f"halted: {account.halted}"
    drawdown = account.drawdown()
    return None if drawdown < limits.drawdown_halt else f"drawdown {drawdown:.2%} at or past {limits.drawdown_halt:.0%}"


def check_heartbeat(symbol: SymbolRisk, now_ns: int, limits: RiskLimits) -> str | None:
    if symbol.heartbeat_ns is None:
        return "dead-man switch: no heartbeat yet"
    gap_ms = (now_ns - symbol.heartbeat_ns) / _NS_PER_MS
    if not gap_ms <= limits.heartbeat_timeout_ms:
        return f"dead-man switch: no record for {gap_ms:.0f} ms"
    if now_ns < symbol.heartbeat_lost_until_ns:
        return f"dead-man switch: cooling down until {symbol.heartbeat_lost_until_ns} after the heartbeat was lost"
    return None


def check_circuit_breaker(symbol: SymbolRisk, now_ns: int) -> str | None:
    if now_ns < symbol.paused_until_ns:
        return f"circuit breaker until {symbol.paused_until_ns}: {symbol.pause_reason}"
    return None


def gate_refusals(account: AccountRisk, symbol: SymbolRisk, now_ns: int, limits: RiskLimits) -> list[Refusal]:
    """Every gate that refuses, by rule name, in a fixed order."""
    found = (("kill_switch", check_kill_switch(account)), ("drawdown", check_drawdown(account, limits)),
             ("heartbeat", check_heartbeat(symbol, now_ns, limits)),
             ("circuit_breaker", check_circuit_breaker(symbol, now_ns)))
    return [(rule, reason) for rule, reason in found if reason is not None]


def check_gates(account: AccountRisk, symbol: SymbolRisk, now_ns: int, limits: RiskLimits) -> list[str]:
    """Every gate that refuses, in a fixed order."""
    return [reason for _, reason in gate_refusals(account, symbol, now_ns, limits)]


def cancel_all_reason(account: AccountRisk, symbol: SymbolRisk, now_ns: int, limits: RiskLimits) -> str | None:
    """Why every resting order of the symbol must be cancelled now, if it must."""
    reasons = check_gates(account, symbol, now_ns, limits)
    return "; ".join(reasons) if reasons else None


def drawdown_warning(account: AccountRisk, limits: RiskLimits) -> str | None:
    drawdown = account.drawdown()
    return f"drawdown {drawdown:.2%} past the warning level {limits.drawdown_warn:.0%}" \
        if drawdown >= limits.drawdown_warn else None


# -- order checks: this order may not go -----------------------------------------------------------------------


def check_live_orders(proposal: Proposal, account: AccountRisk, limits: RiskLimits) -> str | None:
    live = account.exposure.get(proposal.key, Exposure()).live_orders
    if live >= limits.max_live_orders_per_symbol:
        return f"{live} live orders on {proposal.symbol} (limit {limits.max_live_orders_per_symbol})"
    return None


def check_max_position(proposal: Proposal, account: AccountRisk, limits: RiskLimits) -> str | None:
    gross = account.exposure.get(proposal.key, Exposure()).gross + proposal.notional
    limit = limits.max_position_fraction * account.equity()
    if not gross <= limit:
        return f"position {gross:,.2f} on {proposal.symbol} would exceed {limits.max_position_fraction:.0%} " \
               f"of equity ({limit:,.2f})"
    return None


def check_liquidation_buffer(proposal: Proposal, limits: RiskLimits) -> str | None:
    """Isolated margin on a linear perpetual: a long is liquidated at entry * (1 - 1/leverage + maintenance)."""
    direction = 1 if proposal.side == "BUY" else -1
    liquidation = proposal.price * (1.0 - direction * (1.0 / limits.leverage - limits.maintenance_margin_rate))
    distance = direction * (proposal.mid - liquidation) / proposal.mid
    if not distance >= limits.min_liquidation_distance:
        return f"liquidation price {liquidation:,.2f} only {distance:.1%} from mid {proposal.mid:,.2f} " \
               f"(at least {limits.min_liquidation_distance:.0%})"
    return None


def _same_direction(account: AccountRisk, group: tuple[str, ...], side: Side) -> float:
    return sum(e.long_notional if side == "BUY" else e.short_notional
               for (_, symbol), e in account.exposure.items() if symbol in group or "*" in group)


def check_correlated_exposure(proposal: Proposal, account: AccountRisk, limits: RiskLimits) -> str | None:
    limit = limits.max_correlated_fraction * account.equity()
    for group in limits.groups_of(proposal.symbol):
        total = _same_direction(account, group, proposal.side) + proposal.notional
        if not total <= limit:
            return f"{proposal.side} notional {total:,.2f} across {','.join(group)} would exceed " \
                   f"{limits.max_correlated_fraction:.0%} of equity ({limit:,.2f})"
    return None


def order_refusals(proposal: Proposal, account: AccountRisk, limits: RiskLimits) -> list[Refusal]:
    """Every order check that refuses, by rule name, in a fixed order."""
    found = (("live_orders", check_live_orders(proposal, account, limits)),
             ("max_position", check_max_position(proposal, account, limits)),
             ("correlated_exposure", check_correlated_exposure(proposal, account, limits)),
             ("liquidation_buffer", check_liquidation_buffer(proposal, limits)))
    return [(rule, reason) for rule, reason in found if reason is not None]


def check_order(proposal: Proposal, account: AccountRisk, limits: RiskLimits) -> list[str]:
    """Every order check that refuses, in a fixed order."""
    return [reason for _, reason in order_refusals(proposal, account, limits)]


def order_notional(account: AccountRisk, key: SymbolKey, side: Side, fraction: float, limits: RiskLimits) -> float:
    """Risk sizing: `fraction` of equity, cut to the room left under the position and correlated caps."""
    equity = account.equity()
    room = [fraction * equity,
            limits.max_position_fraction * equity - account.exposure.get(key, Exposure()).gross]
    room += [limits.max_correlated_fraction * equity - _same_direction(account, g, side)
             for g in limits.groups_of(key[1])]
    return min(room)
