"""A backtest's report: one self-contained HTML file (charts as inline SVG, no network fetch) and a PNG of its
equity curve beside it (`out.html` -> `out.png`).

It sits beside `results.py` because it reads what that module stores: a run's manifest and its `Replay`. The
figures are `streams/history/metrics.py`'s; this module only gathers and draws them, and says plainly when they
mean little: SYNTHETIC data or model, a span under a day, fewer than `MIN_TRADES` closed trades, no trades at all.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from streams.history.backtest import Replay
from streams.history.metrics import (
    DAY_NS,
    DAYS_PER_YEAR,
    ArmResult,
    Drawdown,
    Trade,
    arm_results,
    drawdown_curve,
    max_drawdown,
    period_returns,
    sharpe,
    sortino,
    trades_of,
    turnover,
)
from streams.history.reader import iso
from streams.history.results import Manifest
from training.scenario import VENUE as SYNTHETIC_VENUE

__all__ = ["MIN_SPAN_NS", "MIN_TRADES", "Figures", "figures_of", "render", "warnings_of", "write_report"]

# Below either, the figures describe noise: stated in the report and in docs/backtest.md
MIN_TRADES = 30
MIN_SPAN_NS = DAY_NS
TRADE_ROWS = 1_000  # the trade list's rows in the HTML; the run's tables hold them all


@dataclass(frozen=True, kw_only=True)
class Figures:
    """Everything the report shows, computed once from a run."""

    manifest: Manifest
    replay: Replay
    capital: float  # starting equity of each account that placed an order (one when none did)
    accounts: int
    times_ns: list[int]  # the equity curve, from the span's start to its end
    equity: list[float]
    returns: list[float]  # daily, `metrics.period_returns`
    trades: list[Trade]
    arms: list[ArmResult]
    drawdown: Drawdown
    sharpe: float | None
    sortino: float | None
    turnover: float
    venues: tuple[str, ...]
    synthetic_model: bool

    @property
    def closed(self) -> list[Trade]:
        return [t for t in self.trades if t.exit is not None]

    @property
    def synthetic(self) -> bool:
        return SYNTHETIC_VENUE in self.venues or self.synthetic_model


def _venues(replay: Replay) -> tuple[str, ...]:
    out = replay.outputs
    venues = {v.venue for v in out.vectors} | {i.venue for _, i in out.intents} | {p.venue for _, p in out.positions}
    return tuple(sorted(venues))


def figures_of(manifest: Manifest, replay: Replay, *, synthetic_model: bool = False) -> Figures:
    out = replay.outputs
    accounts = max(len({p for p, _ in out.intents}), 1)
    capital = replay.config.starting_equity * accounts
    # the curve starts at the span's start and ends at its end, so a run without trades still has one
    times = [manifest.from_ns, *(p.ts_event_ns for p in out.equity), manifest.to_ns]
    pnl = [p.net_pnl for p in out.equity]
    equity = [capital, *(capital + v for v in pnl), capital + (pnl[-1] if pnl else 0.0)]
    returns = period_returns(times, equity, start_ns=manifest.from_ns, end_ns=manifest.to_ns, start_equity=capital)
    intents = [i for _, i in out.intents]
    events = [e for _, e in out.events]
    trades = trades_of(intents, events)
    return Figures(manifest=manifest, replay=replay, capital=capital, accounts=accounts, times_ns=times,
                   equity=equity, returns=returns, trades=trades, arms=arm_results(intents, trades),
                   drawdown=max_drawdown(equity), sharpe=sharpe(returns), sortino=sortino(returns),
                   turnover=turnover(events), venues=_venues(replay), synthetic_model=synthetic_model)


def warnings_of(figures: Figures) -> list[str]:
    """What makes the figures mean little, in plain words; empty when nothing does."""
    m, said = figures.manifest, []
    if SYNTHETIC_VENUE in figures.venues:
        said.append(f"SYNTHETIC data: venue '{SYNTHETIC_VENUE}' (training/scenario.py's generated wick market). "
                    "These figures exercise the order path; they say nothing about real markets.")
    if figures.synthetic_model:
        said.append(f"SYNTHETIC model: {m.model_version} was fitted on the generated scenario, not on real data.")
    if not figures.trades:
        said.append("No trades: no order filled in this span, so there is no PnL, fill or arm result to judge.")
    span_ns = m.to_ns - m.from_ns
    if span_ns < MIN_SPAN_NS or len(figures.closed) < MIN_TRADES:
        said.append(f"Too short to mean anything: {len(figures.closed)} closed trades over {span_ns / DAY_NS:.3g} "
                    f"days; the rule is at least {MIN_TRADES} closed trades and a span of at least one day.")
    return said


# -- charts --------------------------------------------------------------------------------------------------


def _dates(times_ns: Sequence[int]) -> np.ndarray:
    return np.array(times_ns, dtype="datetime64[ns]")


def _equity_figure(figures: Figures) -> Figure:
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.step(_dates(figures.times_ns), figures.equity, where="post", color="#1f5fa8")
    ax.set_title("Equity (quote units)")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)  # whole quote units, not "+3e5" and a residue
    ax.grid(alpha=0.3)
    return fig


def _drawdown_figure(figures: Figures) -> Figure:
    fig = Figure(figsize=(9, 2.4), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(_dates(figures.times_ns), [-d for d in drawdown_curve(figures.equity)], step="post",
                    color="#b23b3b", alpha=0.6)
    ax.set_title("Drawdown from the running peak (quote units)")
    ax.grid(alpha=0.3)
    return fig


def _arms_figure(figures: Figures) -> Figure:
    fig = Figure(figsize=(9, 3), layout="constrained")
    pnl_ax, rate_ax = fig.subplots(1, 2)
    labels = [r.arm.key() for r in figures.arms]
    pnl_ax.bar(labels, [r.net_pnl for r in figures.arms], color="#1f5fa8")
    pnl_ax.set_title("Net PnL per arm (closed trades)")
    rate_ax.bar(labels, [r.fill_rate or 0.0 for r in figures.arms], color="#4a8f3c")
    rate_ax.set_title("Fill rate per arm")
    rate_ax.set_ylim(0, 1)
    for ax in (pnl_ax, rate_ax):
        _empty_note(ax, not labels, "no orders placed")
        ax.tick_params(axis="x", labelrotation=45)
    return fig


def _empty_note(ax: Axes, empty: bool, text: str) -> None:
    if empty:
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: without the XML declaration and DOCTYPE


# -- HTML ----------------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "none" if value is None else f"{value:,.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _span_table(f: Figures) -> str:
    m = f.manifest
    rows = [("from", iso(m.from_ns)), ("to (exclusive)", iso(m.to_ns)), ("symbols", ", ".join(m.symbols)),
            ("venues seen", ", ".join(f.venues) or "none (no decision point)"),
            ("rows read", ", ".join(f"{t} {n:,}" for t, n in m.input_rows.items()) or "none"),
            ("namespace (topic prefix)", repr(m.namespace)), ("model", m.model_version), ("run", m.run),
            ("result hash", f.replay.result_hash), ("input hash", m.input_hash), ("config hash", m.config_hash),
            ("code", f"{m.code_version} ({m.git_commit or 'no git checkout'})")]
    return _table(("data span", ""), rows)


def _figures_table(f: Figures) -> str:
    r, dd = f.replay, f.drawdown
    fill_rate = len(f.trades) / len(r.outputs.intents) if r.outputs.intents else None
    rows = [("net PnL", _num(r.net_pnl)), ("realised PnL (gross)", _num(r.realised_pnl)), ("fees", _num(r.fees)),
            ("funding", _num(r.funding)), ("capital", f"{_num(f.capital)} ({f.accounts} account(s) x "
                                                      f"{_num(r.config.starting_equity)})"),
            ("return on capital", f"{r.net_pnl / f.capital:.4%}"), ("Sharpe (annualised)", _num(f.sharpe)),
            ("Sortino (annualised)", _num(f.sortino)),
            ("max drawdown", f"{_num(dd.amount)} ({'none' if dd.fraction is None else f'{dd.fraction:.4%}'})"),
            ("orders placed", f"{len(r.outputs.intents):,}"), ("entries filled", f"{len(f.trades):,}"),
            ("fill rate", "none" if fill_rate is None else f"{fill_rate:.1%}"),
            ("closed trades", f"{len(f.closed):,}"), ("turnover", f"{_num(f.turnover)} ({f.turnover / f.capital:.2f}x "
                                                                 "capital)")]
    return _table(("figure", "value"), rows)


def _arms_table(f: Figures) -> str:
    rows = [(a.arm.key(), a.intents, a.fills, "none" if a.fill_rate is None else f"{a.fill_rate:.1%}", a.closed,
             _num(a.net_pnl)) for a in f.arms]
    return _table(("arm (δ, T)", "orders", "filled", "fill rate", "closed", "net PnL"), rows) if rows else \
        "<p>No orders were placed, so no arm has a result.</p>"


def _trades_table(f: Figures) -> str:
    if not f.trades:
        return "<p>No trades: no order filled in this span.</p>"
    rows = [(iso(t.entry.ts_event_ns), t.entry.symbol, t.entry.side, t.arm.key(), t.entry.filled_size,
             t.entry.last_fill_price, "open" if t.exit is None else iso(t.exit.ts_event_ns),
             "" if t.exit is None else t.exit.last_fill_price, "" if t.exit is None else t.exit.reason,
             _num(t.fees, 4), _num(t.net_pnl, 4)) for t in f.trades[:TRADE_ROWS]]
    more = (f"<p>The first {TRADE_ROWS:,} of {len(f.trades):,} trades; all are in backtest_order_events.</p>"
            if len(f.trades) > TRADE_ROWS else "")
    return more + _table(("entry time", "symbol", "side", "arm", "size", "entry", "exit time", "exit", "reason",
                          "fees", "net PnL"), rows)


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:0.2em 0.6em;text-align:left}
.warn{background:#fff3cd;border:1px solid #e0b400;padding:0.6em 1em;margin:0.5em 0}svg{max-width:100%;height:auto}"""

_DEFINITIONS = (
    "Returns: the equity curve (capital + net PnL, unrealised included) sampled at the end of each whole UTC day "
    "from the span's start; simple daily returns, flat days count as 0, a trailing part-day is left out. "
    f"Sharpe = mean / sample standard deviation x sqrt({DAYS_PER_YEAR}); Sortino = mean / downside deviation "
    f"(root mean square of min(r, 0) over all days) x sqrt({DAYS_PER_YEAR}); risk-free rate 0. Either is none "
    "with fewer than two days, or with no dispersion (Sharpe) or no losing day (Sortino). Max drawdown: the "
    "largest fall of the equity curve from its running peak. Fill rate: entries filled over orders placed. Arm "
    "and trade PnL: closed trades, after maker entry and taker exit fees; funding is charged per position and is "
    "in the run's total only. Turnover: the notional of every fill, entries and exits.")


def render(figures: Figures) -> str:
    """The report as one HTML document."""
    warnings = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in warnings_of(figures))
    charts = "".join(f"<figure>{_svg(make(figures))}</figure>"
                     for make in (_equity_figure, _drawdown_figure, _arms_figure))
    title = f"liqbot backtest {figures.manifest.run}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{warnings}"
            f"<h2>Data span</h2>{_span_table(figures)}<h2>Results</h2>{_figures_table(figures)}"
            f"<p>{html.escape(_DEFINITIONS)}</p><h2>Charts</h2>{charts}<h2>Per arm</h2>{_arms_table(figures)}"
            f"<h2>Trades</h2>{_trades_table(figures)}</body></html>")


def write_report(path: Path, manifest: Manifest, replay: Replay, *, synthetic_model: bool = False
                 ) -> tuple[Path, Path]:
    """Writes `path` (HTML) and its equity curve as a PNG beside it (same name, .png); both paths."""
    figures = figures_of(manifest, replay, synthetic_model=synthetic_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(figures), encoding="utf-8")
    png = path.with_suffix(".png")
    _equity_figure(figures).savefig(png, format="png", dpi=120)
    return path, png
