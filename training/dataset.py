"""Training rows from real captures: features at decision points by the live feature code, labels by `WickOrder`.

Decision points of the real captures (interim, until they hold liquidation bursts): per (venue, symbol), the first
trade of every 1-second event-time bucket (`EverySecond`). The real captures hold no liquidation burst to decide on
(the Bybit one has none, the Binance one has no liquidation stream), so this model learns how wick orders fare in
ordinary flow. Each such point gives two entries, a buy and a sell, each scored for every arm of the grid. The
SYNTHETIC scenario (training/scenario.py) decides at every liquidation instead (`AtLiquidations`), as the mission
does, for the one entry side the liquidation calls for.

Labels: a `WickOrder` at `limit_price(mid, side, delta)`, placed at the decision trade's time, run over the same
symbol's later trades (the tape) and funding times until it expires or closes. `filled` is whether it reached OPEN,
`net_return` its `net_return()` when filled. A row exists only when the tape reaches `T + H` past the decision,
the latest time its label can be settled, so no exit is invented and no row is kept or dropped by its outcome.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from decision.arms import Arm, ArmGrid, entry_side, limit_price
from decision.feature_spec import NS_PER_S, FeatureSpec
from decision.features import FeatureEngine, MarketRecord
from decision.orders import ExitRule, Fees, WickOrder
from decision.scoring import ArmInputs, input_names, required_mask, screen
from liqbot.data import BINANCE_CAPTURE, BYBIT_CAPTURE, LIQUIDATION_FRAMES
from liqbot.errors import LiqbotError
from schemas.records import BookUpdate, FeatureVector, Liquidation, Side, Ticker, TopOfBook, Trade
from streams.capture_replay import capture_records

__all__ = ["DEFAULT_CAPTURES", "SIDES", "AtLiquidations", "Capture", "CaptureSummary", "Dataset", "DecisionPoint",
           "DecisionPoints", "DecisionRule", "EverySecond", "Label", "Source", "Tape", "build_dataset",
           "decision_points", "horizon_ns", "label", "market_records", "point_labels", "real_records"]

_NS_PER_MS = 1_000_000
SIDES: tuple[Side, Side] = ("BUY", "SELL")


def market_records(path: Path, venue: str) -> list[MarketRecord]:
    """The market records (what features fold in) the live ingest path makes of a capture, in capture order."""
    kinds = Liquidation | Trade | TopOfBook | BookUpdate | Ticker
    return [r for r in capture_records(path, venue) if isinstance(r, kinds)]


@cache
def real_records() -> tuple[MarketRecord, ...]:
    """The feature tests' mix of the real captures: 20k Binance records first, then Bybit's."""
    bybit = market_records(BYBIT_CAPTURE, "bybit-linear")
    # the four liquidation frames span 2025-03 .. 2026-10: each goes before or after the 44 s capture, by time
    liquidations = sorted(market_records(LIQUIDATION_FRAMES, "bybit-linear"), key=lambda r: r.ts_event_ns)
    start = bybit[0].ts_event_ns
    return (*market_records(BINANCE_CAPTURE, "binance-usdm")[:20_000],
            *(r for r in liquidations if r.ts_event_ns < start), *bybit,
            *(r for r in liquidations if r.ts_event_ns >= start))


@dataclass
class Tape:
    """One symbol's trades in arrival order, and its funding times with the rate announced for each."""

    ts_ns: list[int] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    funding: dict[int, float] = field(default_factory=dict)  # funding time -> last rate announced before it

    @property
    def end_ns(self) -> int:
        return self.ts_ns[-1] if self.ts_ns else -1


@dataclass(frozen=True)
class DecisionPoint:
    """The features just after the deciding record, the mid then, the symbol's last trade on its tape (-1: none yet),
    and the entry sides to label."""

    vector: FeatureVector
    mid: float
    tape_index: int
    sides: tuple[Side, ...] = SIDES


@dataclass(frozen=True)
class Label:
    """How one wick order ended: filled or not, and its realised net return when it was."""

    filled: bool
    net_return: float | None
    outcome: str  # EXPIRED, or the exit reason of a filled order


@dataclass(frozen=True)
class DecisionPoints:
    """A capture's decision points, every symbol's tape, and the points the scorer's NaN policy skips (by reason)."""

    points: list[DecisionPoint]
    tapes: dict[tuple[str, str], Tape]
    skipped: Counter[str]

    def tape(self, point: DecisionPoint) -> Tape:
        return self.tapes[(point.vector.venue, point.vector.symbol)]


class DecisionRule(Protocol):
    """Which applied records are decision points, and which entry sides each one labels."""

    def sides(self, record: MarketRecord) -> tuple[Side, ...]:
        """The entry sides to label at `record` (already folded into the features); empty: not a decision point."""
        ...


@dataclass
class EverySecond:
    """The real captures' interim rule: each symbol's first trade of every event-time second, both sides."""

    last_second: dict[tuple[str, str], int] = field(default_factory=dict)

    def sides(self, record: MarketRecord) -> tuple[Side, ...]:
        if not isinstance(record, Trade):
            return ()
        key, second = (record.venue, record.symbol), record.ts_event_ns // NS_PER_S
        if self.last_second.get(key) == second:
            return ()
        self.last_second[key] = second
        return SIDES


@dataclass
class AtLiquidations:
    """The mission's rule: every liquidation, for the entry its side calls for (buy after longs were liquidated)."""

    def sides(self, record: MarketRecord) -> tuple[Side, ...]:
        return (entry_side(record.position_side),) if isinstance(record, Liquidation) else ()


def decision_points(records: Iterable[MarketRecord], spec: FeatureSpec,
                    rule: DecisionRule | None = None) -> DecisionPoints:
    """One pass of the live feature engine: a point wherever `rule` (default `EverySecond`) says."""
    engine, rule = FeatureEngine(spec), rule or EverySecond()
    skipped: Counter[str] = Counter()
    tapes: dict[tuple[str, str], Tape] = {}
    points: list[DecisionPoint] = []
    required = required_mask(spec)
    for record in records:
        key = (record.venue, record.symbol)
        tape = tapes.setdefault(key, Tape())
        if isinstance(record, Ticker):
            _announce_funding(tape, record)
        if not engine.apply(record):
            continue
        if isinstance(record, Trade):
            tape.ts_ns.append(record.ts_event_ns)
            tape.prices.append(float(record.price))
        sides = rule.sides(record)
        if not sides:
            continue
        vector = engine.vector(record)
        reason = screen(np.asarray(vector.values, dtype=np.float32), required)
        mid = engine.mid(*key)
        if reason is not None or mid is None:
            skipped[reason or "no_top_of_book"] += 1
            continue
        points.append(DecisionPoint(vector, mid, len(tape.ts_ns) - 1, sides))
    return DecisionPoints(points, tapes, skipped)


def _announce_funding(tape: Tape, ticker: Ticker) -> None:
    if ticker.funding_rate is not None and ticker.next_funding_time_ns is not None \
            and ticker.ts_event_ns < ticker.next_funding_time_ns:
        tape.funding[ticker.next_funding_time_ns] = float(ticker.funding_rate)


def label(tape: Tape, start_index: int, order: WickOrder) -> Label:
    """Run `order` over the trades after `start_index` (funding applied at each funding time it crosses)."""
    funding = sorted((t, r) for t, r in tape.funding.items() if t > order.placed_ns)
    next_funding = 0
    for ts_ns, price in zip(tape.ts_ns[start_index + 1:], tape.prices[start_index + 1:], strict=True):
        while next_funding < len(funding) and funding[next_funding][0] <= ts_ns:
            order.on_funding(funding[next_funding][1])
            next_funding += 1
        order.on_trade(ts_ns, price)
        if order.state == "EXPIRED":
            return Label(filled=False, net_return=None, outcome="EXPIRED")
        if order.state == "CLOSED":
            return Label(filled=True, net_return=order.net_return(), outcome=str(order.exit_reason))
    raise LiqbotError(f"label not settled by the end of the tape (order placed at {order.placed_ns}, "
                      f"state {order.state}): the row should not exist")


def horizon_ns(arm: Arm, exit_rule: ExitRule) -> int:
    """The latest time after placement at which the arm's label can be settled: T, then the holding horizon H."""
    return (arm.valid_for_ms + exit_rule.hold_ms) * _NS_PER_MS


class Source(Protocol):
    """Where a dataset's market records come from (a real capture, or the synthetic scenario) and how it decides."""

    @property
    def venue(self) -> str: ...

    def name(self) -> str:
        """What the model card calls it."""
        ...

    def sha256(self) -> str: ...

    def records(self) -> list[MarketRecord]: ...

    def rule(self) -> DecisionRule:
        """A fresh decision rule for one pass over `records()`."""
        ...


@dataclass(frozen=True)
class Capture:
    """A real capture file and the venue of its frames."""

    path: Path
    venue: str

    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def records(self) -> list[MarketRecord]:
        return market_records(self.path, self.venue)

    def rule(self) -> DecisionRule:
        return EverySecond()


DEFAULT_CAPTURES = (Capture(BINANCE_CAPTURE, "binance-usdm"), Capture(BYBIT_CAPTURE, "bybit-linear"))


@dataclass(frozen=True)
class CaptureSummary:
    """What one capture gave: records, decision points, why points were skipped, rows, fills."""

    file: str
    sha256: str
    venue: str
    records: int
    decision_points: int
    skipped: dict[str, int]
    rows: int
    past_tape_end: int  # (point, side, arm) whose label the tape cannot settle: no row
    filled: int
    funding_times: int


@dataclass(frozen=True)
class Dataset:
    """Model inputs as the `Scorer` builds them, labels, and when each row was decided and settled."""

    columns: tuple[str, ...]  # input_names(spec)
    inputs: npt.NDArray[np.float32]  # (rows, columns)
    filled: npt.NDArray[np.bool_]
    net_return: npt.NDArray[np.float64]  # NaN where not filled
    decided_ns: npt.NDArray[np.int64]
    settled_by_ns: npt.NDArray[np.int64]  # decided + T + H: the label is known from then on
    arm: npt.NDArray[np.int64]  # index into grid.arms()
    captures: tuple[CaptureSummary, ...]


def point_labels(point: DecisionPoint, tape: Tape, grid: ArmGrid, exit_rule: ExitRule,
                 fees: Fees) -> Iterator[tuple[Side, int, Label | None]]:
    """(side, arm index, label) for every entry of a decision point; None where the tape ends before it settles."""
    placed_ns = point.vector.ts_event_ns
    for side in point.sides:
        for i, arm in enumerate(grid.arms()):
            if tape.end_ns < placed_ns + horizon_ns(arm, exit_rule):
                yield side, i, None
                continue
            order = WickOrder(side=side, price=limit_price(point.mid, side, arm.delta_bps), placed_ns=placed_ns,
                              valid_for_ms=arm.valid_for_ms, exit_rule=exit_rule, fees=fees)
            yield side, i, label(tape, point.tape_index, order)


def build_dataset(captures: Iterable[Source] = DEFAULT_CAPTURES, *, spec: FeatureSpec | None = None,
                  grid: ArmGrid | None = None, exit_rule: ExitRule | None = None, fees: Fees | None = None) -> Dataset:
    """Every settled (decision point, side, arm) of every source."""
    spec, grid = spec or FeatureSpec(), grid or ArmGrid()
    exit_rule, fees = exit_rule or ExitRule(), fees or Fees()
    arms, inputs = grid.arms(), ArmInputs(grid, spec)
    rows: list[npt.NDArray[np.float32]] = []
    labels: list[tuple[bool, float, int, int, int]] = []  # filled, net return, decided, settled by, arm
    summaries = []
    for capture in captures:
        records = capture.records()
        found = decision_points(records, spec, capture.rule())
        before, past_end = len(labels), 0
        for point in found.points:
            decided_ns = point.vector.ts_event_ns
            for side, i, outcome in point_labels(point, found.tape(point), grid, exit_rule, fees):
                if outcome is None:
                    past_end += 1
                    continue
                rows.append(inputs.fill(point.vector.values, side)[i].copy())
                labels.append((outcome.filled, np.nan if outcome.net_return is None else outcome.net_return,
                               decided_ns, decided_ns + horizon_ns(arms[i], exit_rule), i))
        summaries.append(CaptureSummary(
            file=capture.name(), sha256=capture.sha256(), venue=capture.venue,
            records=len(records), decision_points=len(found.points), skipped=dict(sorted(found.skipped.items())),
            rows=len(labels) - before, past_tape_end=past_end, filled=sum(f for f, *_ in labels[before:]),
            funding_times=sum(len(t.funding) for t in found.tapes.values())))
    def column(i: int, dtype: type) -> npt.NDArray[Any]:
        return np.array([row[i] for row in labels], dtype=dtype)

    return Dataset(
        columns=input_names(spec), inputs=np.array(rows, dtype=np.float32).reshape(len(rows), inputs.buffer.shape[1]),
        filled=column(0, bool), net_return=column(1, np.float64), decided_ns=column(2, np.int64),
        settled_by_ns=column(3, np.int64), arm=column(4, np.int64), captures=tuple(summaries))

