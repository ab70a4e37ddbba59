"""A backtest's figures as plain functions: the equity curve's drawdown and ratios, its trades and its arms.

No I/O and no plotting: `streams/history/report.py` renders what these compute. Ratios are defined on one stated
return series (`period_returns`) and are None where they are undefined (too few periods, no dispersion, no losing
period), never NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from decision.arms import Arm
from decision.ids import exit_order_id
from schemas.records import OrderEvent, OrderIntent

__all__ = ["DAYS_PER_YEAR", "DAY_NS", "ArmResult", "Drawdown", "Trade", "arm_results", "drawdown_curve", "max_drawdown",
           "period_returns", "sharpe", "sortino", "trades_of", "turnover"]

DAY_NS = 86_400 * 10**9
# crypto perpetuals trade every day of the year, so a year is 365 daily periods (not 252 exchange days)
DAYS_PER_YEAR = 365


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest fall of equity from a running peak: in quote units and as a fraction of that peak."""

    amount: float
    fraction: float | None  # None when the peak is not positive
    peak_index: int
    trough_index: int


def drawdown_curve(equity: Sequence[float]) -> list[float]:
    """At each point, how far equity is below its running peak (quote units, >= 0)."""
    out, peak = [], -math.inf
    for value in equity:
        peak = max(peak, value)
        out.append(peak - value)
    return out


def max_drawdown(equity: Sequence[float]) -> Drawdown:
    """The largest peak-to-trough fall; zero for an empty or never-falling curve."""
    best = Drawdown(0.0, 0.0, 0, 0)
    peak_index = 0
    for i, value in enumerate(equity):
        if value > equity[peak_index]:
            peak_index = i
        fall = equity[peak_index] - value
        if fall > best.amount:
            peak = equity[peak_index]
            best = Drawdown(fall, fall / peak if peak > 0 else None, peak_index, i)
    return best


def period_returns(times_ns: Sequence[int], equity: Sequence[float], *, start_ns: int, end_ns: int,
                   start_equity: float, period_ns: int = DAY_NS) -> list[float]:
    """Simple returns of equity sampled at the end of each whole period from `start_ns` (the last value before
    each period's end, `start_equity` before the first point); periods with no change count as 0. A trailing
    part-period is left out, so a span shorter than one period has no returns."""
    out, j, previous, value = [], 0, start_equity, start_equity
    for k in range(1, (end_ns - start_ns) // period_ns + 1):
        boundary = start_ns + k * period_ns
        while j < len(times_ns) and times_ns[j] < boundary:
            value, j = equity[j], j + 1
        out.append(value / previous - 1.0 if previous > 0 else 0.0)
        previous = value
    return out


def sharpe(returns: Sequence[float], periods_per_year: float = DAYS_PER_YEAR) -> float | None:
    """mean / sample standard deviation (n-1) of the returns, times sqrt(periods per year), risk-free rate 0.
    None with fewer than two returns or none of them different."""
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return mean / sd * math.sqrt(periods_per_year) if sd > 0 else None


def sortino(returns: Sequence[float], periods_per_year: float = DAYS_PER_YEAR) -> float | None:
    """mean / downside deviation, sqrt(mean of min(r, 0)^2) over all n returns (target 0), times sqrt(periods per
    year). None with fewer than two returns or no losing period."""
    if len(returns) < 2:
        return None
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return sum(returns) / len(returns) / downside * math.sqrt(periods_per_year) if downside > 0 else None


@dataclass(frozen=True, slots=True)
class Trade:
    """A filled entry and, once closed, its exit; net PnL is after both fees (funding is charged per position,
    not per trade, so it is left out here and counted in the run's total)."""

    intent: OrderIntent
    entry: OrderEvent
    exit: OrderEvent | None

    @property
    def arm(self) -> Arm:
        return Arm(self.intent.delta_bps, self.intent.valid_for_ms)

    @property
    def fees(self) -> float:
        return sum(float(Decimal(e.fee)) for e in (self.entry, self.exit) if e is not None and e.fee is not None)

    @property
    def gross_pnl(self) -> float | None:
        if self.exit is None:
            return None
        direction = 1 if self.entry.side == "BUY" else -1
        return float(direction * (_price(self.exit) - _price(self.entry)) * Decimal(self.entry.filled_size))

    @property
    def net_pnl(self) -> float | None:
        gross = self.gross_pnl
        return None if gross is None else gross - self.fees


def _price(event: OrderEvent) -> Decimal:
    return Decimal(event.last_fill_price or event.price)


def trades_of(intents: Sequence[OrderIntent], events: Sequence[OrderEvent]) -> list[Trade]:
    """Every filled entry in fill order, joined to its intent and to its exit (`exit_order_id`), when it has one."""
    filled = {e.client_order_id: e for e in events if e.status == "FILLED"}
    by_id = {i.client_order_id: i for i in intents}
    entries = sorted((e for e in filled.values() if e.client_order_id in by_id), key=lambda e: e.ts_event_ns)
    return [Trade(by_id[e.client_order_id], e, filled.get(exit_order_id(e.client_order_id))) for e in entries]


def turnover(events: Sequence[OrderEvent]) -> float:
    """The notional of every fill, entries and exits, in quote units."""
    return float(sum((_price(e) * Decimal(e.last_fill_size or e.filled_size) for e in events
                      if e.status == "FILLED"), Decimal(0)))


@dataclass(frozen=True, slots=True)
class ArmResult:
    arm: Arm
    intents: int
    fills: int
    closed: int
    net_pnl: float  # of its closed trades, after fees

    @property
    def fill_rate(self) -> float | None:
        return self.fills / self.intents if self.intents else None


def arm_results(intents: Sequence[OrderIntent], trades: Sequence[Trade]) -> list[ArmResult]:
    """Per arm that placed an order: orders, entries filled (fill rate), trades closed and their net PnL."""
    arms = sorted({Arm(i.delta_bps, i.valid_for_ms) for i in intents}, key=lambda a: (a.delta_bps, a.valid_for_ms))
    out = []
    for arm in arms:
        mine = [t for t in trades if t.arm == arm]
        closed = [pnl for t in mine if (pnl := t.net_pnl) is not None]
        out.append(ArmResult(arm, sum(Arm(i.delta_bps, i.valid_for_ms) == arm for i in intents), len(mine),
                             len(closed), sum(closed)))
    return out
