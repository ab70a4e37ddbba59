"""Per-symbol features in event time, one record at a time; live agents and replay run this same step.

A symbol's state is a function of the sequence of records it was given, nothing else: every record moves all
of the symbol's windows to its time, and reading a vector changes nothing. So a vector at an event is the same
whether it is read after every record (live), only at decision points (replay) or after a restart from saved
state, and it never depends on later records.

The state and the values are compiled (`core/src/features.rs`), one implementation; this module is
its face. The Python version it replaced survives as the tests' oracle (`tests/oracle/features.py`), and the
tests prove the two bit-equal.
"""

from __future__ import annotations

from collections import Counter

from liqbot_core import FeatureEngine as _Engine
from liqbot_core import MarketEvent

from decision.arms import entry_side
from decision.feature_spec import NS_PER_S, FeatureSpec
from schemas.records import BookUpdate, FeatureVector, Liquidation, Ticker, TopOfBook, Trade
from streams.orderbook import OrderBook

__all__ = ["FeatureEngine", "MarketRecord", "feature_history"]

MarketRecord = Liquidation | Trade | TopOfBook | BookUpdate | Ticker


def _compiled(spec: FeatureSpec) -> _Engine:
    """The compiled engine for `spec`: its windows in ns, and which kept window each feature reads."""
    kept = spec.liquidation_sum_windows_s()
    at = {w: i for i, w in enumerate(kept)}  # 5 and 5.0 are one window, as they were one dict key
    liquidation = ([round(w * NS_PER_S) for w in kept], [at[w] for w in spec.liquidation_windows_s],
                   [(at[w / 2], at[w]) for w in spec.acceleration_windows_s])
    burst = (at[spec.burst_window_s], spec.burst_window_s * NS_PER_S, spec.burst_baseline_windows,
             spec.burst_sigma_floor)
    return _Engine(liquidation, burst, spec.largest_window_s * NS_PER_S, spec.median_window_s * NS_PER_S,
                   [w * NS_PER_S for w in spec.trade_windows_s], list(spec.depth_levels),
                   [w * NS_PER_S for w in spec.open_interest_windows_s], spec.lateness_s * NS_PER_S)


class FeatureEngine:
    """All symbols' features; `update` folds a record in and returns a vector at every decision point."""

    __slots__ = ("_engine", "fingerprint", "spec")

    def __init__(self, spec: FeatureSpec | None = None) -> None:
        self.spec = spec or FeatureSpec()
        self.fingerprint = self.spec.fingerprint()
        self._engine = _compiled(self.spec)

    def update(self, record: MarketRecord | MarketEvent) -> FeatureVector | None:
        """Apply one market record (or its body decoded into a `MarketEvent`, folded in once); a liquidation (a
        decision point) returns the vector just after it."""
        out = self._engine.update(record)
        if out is None:
            return None
        return self.decision_vector(record, *out)

    def apply(self, record: MarketRecord) -> bool:
        """Fold a record into its symbol; False when it was a duplicate or too late (counted either way).

        A liquidation or trade more than `lateness_s` older than its symbol's newest record is skipped (its
        windows have moved on); a book update or ticker never is (a skipped delta would corrupt the book, and
        Bybit's book times trail its trades by seconds); anything older than the newest applies at the newest.
        """
        return self._engine.apply(record)

    def vector(self, record: MarketRecord) -> FeatureVector:
        """The features of `record`'s symbol at the symbol's watermark, tagged with the record's ids.

        At a liquidation the vector also says which entry the decision point calls for.
        """
        return self.decision_vector(record, *self._engine.values(record.venue, record.symbol))

    def decision_vector(self, record: MarketRecord | MarketEvent, watermark_ns: int,
                        values: tuple[float, ...]) -> FeatureVector:
        """The vector of `values` read at `watermark_ns`, tagged with `record`'s ids (and entry, at a liquidation)."""
        liquidated = record.position_side if isinstance(record, Liquidation | MarketEvent) else None
        return FeatureVector(
            venue=record.venue, symbol=record.symbol, event_id=record.event_id, ts_event_ns=watermark_ns,
            ts_recv_ns=record.ts_recv_ns, feature_spec=self.fingerprint, values=values,
            side=entry_side(liquidated) if liquidated is not None else None,
        )

    @property
    def compiled(self) -> _Engine:
        """The compiled engine itself, for the agents' batch path (`liqbot_core.MarketFold`)."""
        return self._engine

    @property
    def symbols(self) -> list[tuple[str, str]]:
        """(venue, symbol) of every symbol seen, first seen first."""
        return self._engine.symbols()

    @property
    def counts(self) -> Counter[str]:
        """applied, reordered, late, duplicate, late:<schema>."""
        return Counter(dict(self._engine.counts()))

    def mid(self, venue: str, symbol: str) -> float | None:
        """The mid of a symbol's newest top of book; None before one and after a RESYNC."""
        return self._engine.mid(venue, symbol)

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        """A copy of the book a symbol's features read; None before its snapshot and after a RESYNC."""
        native = self._engine.book(venue, symbol)
        return None if native is None else OrderBook(native)

    def __getstate__(self) -> tuple[FeatureSpec, _Engine]:
        return self.spec, self._engine  # the engine pickles as compact bytes

    def __setstate__(self, state: tuple[FeatureSpec, _Engine]) -> None:
        self.spec, self._engine = state
        self.fingerprint = self.spec.fingerprint()


def feature_history(records: list[MarketRecord], spec: FeatureSpec | None = None) -> list[FeatureVector]:
    """One pass over a history (replay, training): the vector after every applied record, in order."""
    engine = FeatureEngine(spec)
    return [engine.vector(r) for r in records if engine.apply(r)]
