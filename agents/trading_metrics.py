"""Orders, positions, account and risk state as gauges, read from the decide agent's state at scrape time.

Decide's state is what the risk rules act on, in paper and live trading alike: its order book of intents and
order events, each partition's `AccountRisk` (equity from the Position records it folded) and each symbol's
`SymbolRisk`. Each source partition keeps an account of its own (the risk rules check each one apart), so the
drawdown is the largest of them. Equity, PnL and drawdown appear once a Position has been folded: under
`--live` Bybit's positions are not fed back yet, and starting equity would be a constant, not a measurement.
A symbol appears once decide has decided on it or its circuit breaker has tripped (not each of the
thousand-odd listed instruments).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from prometheus_client.core import GaugeMetricFamily

from decision.ledger import OrderTracker
from decision.pipeline import DecideStep
from decision.risk import SymbolKey
from decision.strategy import SymbolStrategy

__all__ = ["trading_families"]

_SYMBOL = ("venue", "symbol")


def trading_families(steps: list[DecideStep]) -> Iterator[GaugeMetricFamily]:
    """The gauges of docs/metrics.md from these decide states (those of the partitions this worker owns)."""
    yield from _symbol_families(steps)
    yield from _account_families(steps)


def _symbol_families(steps: list[DecideStep]) -> Iterator[GaugeMetricFamily]:
    orders = GaugeMetricFamily("liqbot_open_orders", "Orders resting at the venue (sent, not filled or ended)",
                               labels=_SYMBOL)
    positions = GaugeMetricFamily("liqbot_position_notional_quote", "Signed notional of open positions at entry",
                                  labels=_SYMBOL)
    breakers = GaugeMetricFamily("liqbot_circuit_breaker_open", "The symbol's circuit breaker is open (0/1)",
                                 labels=_SYMBOL)
    seen: set[SymbolKey] = set()
    for step in steps:
        for state in list(step.symbols.values()):
            if state.key in seen or not _watched(state):
                continue
            seen.add(state.key)
            resting, notional = _exposure(state.orders)
            labels = list(state.key)
            orders.add_metric(labels, float(resting))
            positions.add_metric(labels, notional)
            breakers.add_metric(labels, 1.0 if _breaker_open(state) else 0.0)
    yield from (orders, positions, breakers)


def _account_families(steps: list[DecideStep]) -> Iterator[GaugeMetricFamily]:
    equity = GaugeMetricFamily("liqbot_equity_quote", "Account equity (starting equity plus net PnL)")
    pnl = GaugeMetricFamily("liqbot_pnl_quote", "Net PnL since start: realised and unrealised, after fees and funding")
    drawdown = GaugeMetricFamily("liqbot_drawdown_ratio", "Drawdown from the equity peak, 0.05 = 5%")
    halted = GaugeMetricFamily("liqbot_trading_halted", "The drawdown halt is in force (0/1)")
    kill = GaugeMetricFamily("liqbot_kill_switch_engaged", "The operator kill switch is in force (0/1)")
    accounts = [step.account for step in steps]
    if accounts:
        halted.add_metric([], 1.0 if any(a.halted is not None for a in accounts) else 0.0)
        # the field the gate `check_kill_switch` reads and the operator's switch sets (DecideStep.on_kill)
        kill.add_metric([], 1.0 if any(a.kill_switch is not None for a in accounts) else 0.0)
    fed = [a for a in accounts if a.pnl_ts_ns]
    if fed:
        net = sum(sum(list(a.pnl.values())) for a in fed)
        equity.add_metric([], fed[0].starting_equity + net)
        pnl.add_metric([], net)
        drawdown.add_metric([], max(a.drawdown() for a in fed))
    yield from (equity, pnl, drawdown, halted, kill)


def _watched(state: SymbolStrategy) -> bool:
    return bool(state.counts) or state.risk.paused_until_ns >= 0


def _exposure(orders: OrderTracker) -> tuple[int, float]:
    """Resting orders, and the signed entry notional of the filled ones not yet closed."""
    resting, notional = 0, Decimal(0)
    for order in list(orders.live.values()):
        if order.entry_price is None:
            resting += 1
        else:
            direction = 1 if order.intent.side == "BUY" else -1
            notional += direction * order.entry_price * Decimal(order.intent.size)
    return resting, float(notional)


def _breaker_open(state: SymbolStrategy) -> bool:
    """Open at the symbol's event time (its newest record), as the gate sees it at the next decision."""
    risk = state.risk
    return risk.heartbeat_ns is not None and risk.heartbeat_ns < risk.paused_until_ns
