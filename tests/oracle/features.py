"""The test oracle of the compiled features (`core/src/features.rs`): the Python implementation they
were computed with before, kept so that tests prove the compiled values bit-equal. Tests only.

A symbol's state is a function of the sequence of records it was given, nothing else: every record moves all
of the symbol's windows to its time, and reading a vector changes nothing. So a vector at an event is the same
whether it is read after every record (live), only at decision points (replay) or after a restart from saved
state, and it never depends on later records.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

from decision.arms import entry_side
from decision.feature_spec import NS_PER_S, FeatureSpec
from decision.ids import RecentIds
from schemas.records import BookUpdate, FeatureVector, Liquidation, Ticker, TopOfBook, Trade
from streams.orderbook import OrderBook
from tests.oracle.windows import ValueAt, WindowMax, WindowMedian, WindowSums

MarketRecord = Liquidation | Trade | TopOfBook | BookUpdate | Ticker
_NAN = float("nan")
_RECENT_IDS = 8192  # event ids remembered per symbol to drop redelivered records
_NS_PER_HOUR = 3600 * NS_PER_S
_NS_PER_DAY = 24 * _NS_PER_HOUR
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else _NAN


@dataclass
class SymbolFeatures:
    """The windows and last values of one symbol."""

    spec: FeatureSpec
    watermark_ns: int = -1  # newest event time applied
    liq_sums: dict[float, WindowSums] = field(init=False)  # notional, count, long, short
    burst_windows: deque[tuple[int, float]] = field(default_factory=deque)  # (window index, notional)
    largest: WindowMax = field(init=False)
    median: WindowMedian = field(init=False)
    last_liquidation_ns: int | None = None
    trade_sums: dict[int, WindowSums] = field(init=False)  # buy, sell, count, px*qty, qty, r^2
    last_trade_price: float | None = None
    top: TopOfBook | None = None
    book: OrderBook | None = None
    funding_rate: float = _NAN
    next_funding_ns: int | None = None
    open_interest: float = _NAN
    open_interest_then: dict[int, ValueAt] = field(init=False)
    seen: RecentIds = field(default_factory=lambda: RecentIds(_RECENT_IDS))

    def __post_init__(self) -> None:
        s = self.spec
        self.liq_sums = {w: WindowSums(round(w * NS_PER_S), 4) for w in s.liquidation_sum_windows_s()}
        self.largest = WindowMax(s.largest_window_s * NS_PER_S)
        self.median = WindowMedian(s.median_window_s * NS_PER_S)
        self.trade_sums = {w: WindowSums(w * NS_PER_S, 6) for w in s.trade_windows_s}
        self.open_interest_then = {w: ValueAt(w * NS_PER_S) for w in s.open_interest_windows_s}

    def apply(self, record: MarketRecord, ts_ns: int) -> None:
        """Fold one record in at `ts_ns` (its event time, or the watermark when it came a little late)."""
        self.watermark_ns = ts_ns
        if isinstance(record, Liquidation):
            self._liquidation(record, ts_ns)
        elif isinstance(record, Trade):
            self._trade(record, ts_ns)
        elif isinstance(record, TopOfBook):
            self.top = record
        elif isinstance(record, BookUpdate):
            self._book(record)
        elif isinstance(record, Ticker):
            self._ticker(record, ts_ns)
        self._expire(ts_ns)

    def _liquidation(self, liq: Liquidation, ts_ns: int) -> None:
        notional = float(liq.bankruptcy_price) * float(liq.size)
        is_long = liq.position_side == "LONG"
        for sums in self.liq_sums.values():
            sums.add(ts_ns, (notional, 1.0, notional if is_long else 0.0, 0.0 if is_long else notional))
        index = self._burst_index(ts_ns)
        if self.burst_windows and self.burst_windows[-1][0] == index:
            self.burst_windows[-1] = (index, self.burst_windows[-1][1] + notional)
        else:
            self.burst_windows.append((index, notional))
        self.largest.add(ts_ns, notional)
        self.median.add(ts_ns, notional)
        self.last_liquidation_ns = ts_ns

    def _trade(self, trade: Trade, ts_ns: int) -> None:
        price, size = float(trade.price), float(trade.size)
        r2 = math.log(price / self.last_trade_price) ** 2 if self.last_trade_price else 0.0
        self.last_trade_price = price
        buy = size if trade.taker_side == "BUY" else 0.0
        values = (buy, size - buy, 1.0, price * size, size, r2)
        for sums in self.trade_sums.values():
            sums.add(ts_ns, values)

    def _book(self, update: BookUpdate) -> None:
        if update.update_type == "SNAPSHOT":
            self.book = OrderBook()
            self.book.reset(update)
        elif update.update_type == "RESYNC":
            self.book = self.top = None  # unknown until the next snapshot: book features are NaN meanwhile
        elif self.book is not None:
            self.book.apply(update)

    def _ticker(self, ticker: Ticker, ts_ns: int) -> None:
        if ticker.funding_rate is not None:
            self.funding_rate = float(ticker.funding_rate)
        if ticker.next_funding_time_ns is not None:
            self.next_funding_ns = ticker.next_funding_time_ns
        if ticker.open_interest is not None:
            self.open_interest = float(ticker.open_interest)
            for then in self.open_interest_then.values():
                then.add(ts_ns, self.open_interest)

    def _expire(self, now_ns: int) -> None:
        for sums in self.liq_sums.values():
            sums.expire(now_ns)
        for sums in self.trade_sums.values():
            sums.expire(now_ns)
        self.largest.expire(now_ns)
        self.median.expire(now_ns)
        oldest = self._burst_index(now_ns) - self.spec.burst_baseline_windows
        while self.burst_windows and self.burst_windows[0][0] < oldest:
            self.burst_windows.popleft()
        for then in self.open_interest_then.values():
            then.expire(now_ns)

    def values(self) -> list[float]:
        """The vector at the watermark, in `spec.names()` order; reading it changes nothing."""
        now = self.watermark_ns
        out: list[float] = []
        for w in self.spec.liquidation_windows_s:
            notional, count, long_, short = self.liq_sums[w].sums
            out += [notional, count, _ratio(long_ - short, long_ + short)]
        out.append(self._burst_z(now))
        for w in self.spec.acceleration_windows_s:
            recent, whole = self.liq_sums[w / 2].sums[1], self.liq_sums[w].sums[1]
            out.append((recent + 1.0) / (whole - recent + 1.0))  # +1: defined, and 1.0, when nothing happened
        out.append((now - self.last_liquidation_ns) / NS_PER_S if self.last_liquidation_ns is not None else _NAN)
        out.append(_ratio(self.largest.value(), self.median.value()))
        for w in self.spec.trade_windows_s:
            buy, sell, count, px_qty, qty, r2 = self.trade_sums[w].sums
            last = self.last_trade_price if count and self.last_trade_price is not None else _NAN
            out += [_ratio(buy - sell, buy + sell), count, (last / _ratio(px_qty, qty) - 1.0) * 1e4,
                    math.sqrt(max(r2, 0.0)) if count else _NAN]
        out += self._book_values()
        for w in self.spec.open_interest_windows_s:
            before = self.open_interest_then[w].value(now)
            out.append(_ratio(self.open_interest - before, before))
        out.append(self.funding_rate)
        out.append((self.next_funding_ns - now) / NS_PER_S if self.next_funding_ns is not None else _NAN)
        out += _calendar(now)
        return out

    def _burst_index(self, ts_ns: int) -> int:
        """Which burst window (of `spec.burst_window_s`, aligned to the epoch) a time falls in."""
        return ts_ns // (self.spec.burst_window_s * NS_PER_S)

    def _burst_z(self, now_ns: int) -> float:
        current = self.liq_sums[self.spec.burst_window_s].sums[0]
        index, n = self._burst_index(now_ns), self.spec.burst_baseline_windows
        baseline = [notional for i, notional in self.burst_windows if index - n <= i < index]
        mean = sum(baseline) / n  # windows without a liquidation count as zero notional
        variance = sum((x - mean) ** 2 for x in baseline) + (n - len(baseline)) * mean**2
        sigma = max(math.sqrt(variance / n), self.spec.burst_sigma_floor)
        return (current - mean) / sigma

    def _book_values(self) -> list[float]:
        if self.top is None:
            spread = micro_dev = _NAN
        else:
            bid, ask, mid = float(self.top.bid_price), float(self.top.ask_price), self.top.mid
            spread, micro_dev = (ask - bid) / mid * 1e4, (self.top.microprice - mid) / mid * 1e4
        return [spread, micro_dev, *_depth_imbalances(self.book, self.spec.depth_levels)]


def _depth_imbalances(book: OrderBook | None, depths: tuple[int, ...]) -> list[float]:
    """(bid size - ask size) / both over the best n levels of each side, for each n."""
    if book is None or not book.bids or not book.asks:
        return [_NAN] * len(depths)
    top_bids, top_asks = book.top(max(depths))
    bids, asks = [float(lv.size) for lv in top_bids], [float(lv.size) for lv in top_asks]
    out = []
    for n in depths:
        bid, ask = sum(bids[:n]), sum(asks[:n])
        out.append(_ratio(bid - ask, bid + ask))
    return out


def _calendar(ts_ns: int) -> list[float]:
    hour = (ts_ns % _NS_PER_DAY) / _NS_PER_HOUR
    weekday = (ts_ns // _NS_PER_DAY + _EPOCH_WEEKDAY) % 7 + (ts_ns % _NS_PER_DAY) / _NS_PER_DAY
    return [math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24),
            math.sin(2 * math.pi * weekday / 7), math.cos(2 * math.pi * weekday / 7)]


@dataclass
class FeatureEngine:
    """All symbols' features; `update` folds a record in and returns a vector at every decision point."""

    spec: FeatureSpec = field(default_factory=FeatureSpec)
    symbols: dict[tuple[str, str], SymbolFeatures] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # applied, reordered, late, duplicate
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = self.spec.fingerprint()

    def update(self, record: MarketRecord) -> FeatureVector | None:
        """Apply one market record; a liquidation (a decision point) returns the vector just after it."""
        applied = self.apply(record)
        if applied and isinstance(record, Liquidation):
            return self.vector(record)
        return None

    def apply(self, record: MarketRecord) -> bool:
        """Fold a record into its symbol; False when it was a duplicate or too late (counted either way).

        A liquidation or trade more than `lateness_s` older than its symbol's newest record is skipped (its
        windows have moved on); a book update or ticker never is (a skipped delta would corrupt the book, and
        Bybit's book times trail its trades by seconds); anything older than the newest applies at the newest.
        """
        key = (record.venue, record.symbol)  # a spot and a perpetual book may share a symbol name
        state = self.symbols.get(key)
        if state is None:
            state = self.symbols[key] = SymbolFeatures(self.spec)
        ts_ns: int = record.ts_event_ns
        windowed = isinstance(record, Liquidation | Trade)  # books and tickers replace state, in their own order
        if windowed and ts_ns < state.watermark_ns - self.spec.lateness_s * NS_PER_S:
            self.counts["late"] += 1
            self.counts[f"late:{record.SCHEMA}"] += 1
            return False
        if not state.seen.remember(f"{record.SCHEMA}|{record.event_id}"):
            self.counts["duplicate"] += 1
            return False
        if ts_ns < state.watermark_ns:
            self.counts["reordered"] += 1
            ts_ns = state.watermark_ns
        state.apply(record, ts_ns)
        self.counts["applied"] += 1
        return True

    def vector(self, record: MarketRecord) -> FeatureVector:
        """The features of `record`'s symbol at the symbol's watermark, tagged with the record's ids.

        At a liquidation the vector also says which entry the decision point calls for.
        """
        state = self.symbols[(record.venue, record.symbol)]
        return FeatureVector(
            venue=record.venue, symbol=record.symbol, event_id=record.event_id,
            ts_event_ns=state.watermark_ns, ts_recv_ns=record.ts_recv_ns,
            feature_spec=self.fingerprint, values=tuple(state.values()),
            side=entry_side(record.position_side) if isinstance(record, Liquidation) else None,
        )


def feature_history(records: list[MarketRecord], spec: FeatureSpec | None = None) -> list[FeatureVector]:
    """One pass over a history (replay, training): the vector after every applied record, in order."""
    engine = FeatureEngine(spec or FeatureSpec())
    return [engine.vector(r) for r in records if engine.apply(r)]
