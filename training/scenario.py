"""A SYNTHETIC liquidation-wick market from a seeded generator, to exercise the order path; never real data.

No real capture holds a liquidation burst, so nothing real reaches predict -> decide -> intent -> paper fill. This
module makes a market that does: a random-walk trade tape with its order book (snapshot, then deltas), top of book,
tickers and the instrument, and liquidation bursts, each followed by a wick: the mid is pushed through the book in
the burst's direction by a random depth, then partly reverts (the mission's trading idea). Venue "synthetic",
symbols like "WICKUSDT", every event id "synthetic-...": it cannot pass for real data, and it backs no claim about
strategy performance.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from statistics import NormalDist

from decision.feature_spec import NS_PER_S
from decision.features import MarketRecord
from liqbot.errors import LiqbotError
from schemas.records import (
    BookLevel,
    BookUpdate,
    Instrument,
    Liquidation,
    PositionSide,
    Side,
    Ticker,
    TopOfBook,
    Trade,
)
from training.dataset import AtLiquidations, DecisionRule

__all__ = ["VENUE", "Burst", "Scenario", "ScenarioRecord", "ScenarioSource", "WickScenario", "WickShape", "generate"]

VENUE = "synthetic"
ScenarioRecord = MarketRecord | Instrument
_MS = 1_000_000
_LIQUIDATION_PUSH_MS = 500  # Bybit pushes allLiquidation every 500 ms
_FUNDING_EVERY_NS = 8 * 3600 * NS_PER_S
_STANDARD_NORMAL = NormalDist()
_SETTLED_AFTER = 30.0  # reversion time constants after which a wick counts as settled (e^-30: far below a tick)
# sort rank at equal event times: the listing first, then the book, tickers, trades, and the liquidation last
_RANK = {Instrument: 0, BookUpdate: 1, TopOfBook: 2, Ticker: 3, Trade: 4, Liquidation: 5}


@dataclass(frozen=True, kw_only=True)
class WickShape:
    """A wick's depth (lognormal: most are tens of bps; a few cascades run far deeper, through any stop-loss), how
    much of it reverts, and how fast."""

    median_depth_bps: float = 45.0
    depth_sigma: float = 0.5  # of log depth
    max_depth_bps: float = 200.0
    deep_chance: float = 0.1  # a cascade whose depth is uniform in `deep_depth_bps` instead
    deep_depth_bps: tuple[float, float] = (110.0, 200.0)
    reversion: tuple[float, float] = (0.5, 0.95)  # fraction of the depth that reverts (uniform)
    push_s: tuple[float, float] = (0.5, 2.0)  # from the first liquidation to the wick's extreme (uniform)
    revert_s: tuple[float, float] = (3.0, 20.0)  # time constant of the reversion (uniform)


@dataclass(frozen=True, kw_only=True)
class WickScenario:
    """Everything that shapes a scenario; the same config (seed included) gives the same records."""

    seed: int = 1
    symbols: tuple[str, ...] = ("WICKUSDT",)
    start_ns: int = 1_767_229_200 * NS_PER_S  # 2026-01-01 01:00:00 UTC: the next funding time is 08:00
    duration_s: int = 9_000
    bursts: int = 50  # across all symbols, one at a time
    base_price: float = 100.0
    tick_size: str = "0.01"
    qty_step: str = "0.1"
    volatility_bps: float = 1.0  # random walk of the mid, per square root of a second (about 3 % a day)
    trades_per_s: float = 4.0  # per symbol (Poisson)
    burst_trade_factor: float = 10.0  # trade rate multiple while a wick is pushed
    book_interval_ms: int = 200
    book_levels: int = 25  # per side; the features read 20
    ticker_interval_ms: int = 1_000
    wick: WickShape = field(default_factory=WickShape)
    notional_per_bps: float = 20_000.0  # a burst's liquidated notional per bps of its wick, quote units
    liquidations: tuple[int, int] = (3, 12)  # per burst (uniform)
    feed_latency_ms: float = 15.0  # mean delay from the exchange's message time to local receipt
    warmup_s: int = 60  # before the first burst
    settle_s: int = 150  # after a burst before the next: T + H of the longest arm (60 s + 60 s) and some

    def __post_init__(self) -> None:
        if not self.symbols or self.bursts < 1 or self._slot_s() < self.settle_s:
            raise LiqbotError(f"{self.bursts} bursts on {len(self.symbols)} symbols do not fit {self.duration_s} s "
                              f"with {self.settle_s} s between bursts and {self.warmup_s} s of warm-up")

    def _slot_s(self) -> float:
        return (self.duration_s - self.warmup_s - self.settle_s) / max(self.bursts, 1)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_s * NS_PER_S


@dataclass(frozen=True, kw_only=True)
class Burst:
    """One liquidation burst and its wick: what the scenario built in, for tests to check outcomes against."""

    symbol: str
    ts_ns: int  # the first liquidation
    liquidated: PositionSide  # LONG: forced sells push the price down
    depth_bps: float
    reversion: float
    push_ns: int
    revert_ns: int
    notional: float  # liquidated, quote units
    liquidations: int

    @property
    def direction(self) -> int:
        return -1 if self.liquidated == "LONG" else 1

    def offset(self, ts_ns: int) -> float:
        """The log-price offset this wick adds at `ts_ns`: a linear push to the depth, then exponential reversion."""
        if ts_ns <= self.ts_ns:
            return 0.0
        depth = self.direction * self.depth_bps * 1e-4
        if ts_ns < self.ts_ns + self.push_ns:
            return depth * (ts_ns - self.ts_ns) / self.push_ns
        return depth * (1.0 - self.reversion + self.reversion * math.exp(-(ts_ns - self.ts_ns - self.push_ns)
                                                                         / self.revert_ns))

    def pushing(self, ts_ns: int) -> bool:
        return self.ts_ns <= ts_ns < self.ts_ns + self.push_ns

    def settled_ns(self) -> int:
        return self.ts_ns + self.push_ns + round(_SETTLED_AFTER * self.revert_ns)


class _Random:
    """Draws built on `random.Random.random()` alone: the one generator Python keeps identical across versions."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._rng.random()

    def normal(self) -> float:
        return _STANDARD_NORMAL.inv_cdf(min(max(self._rng.random(), 1e-12), 1 - 1e-12))

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * self.normal())

    def exponential(self, mean: float) -> float:
        return -mean * math.log(1.0 - self._rng.random())

    def integer(self, low: int, high: int) -> int:
        """Uniform in [low, high]."""
        return min(low + int(self._rng.random() * (high - low + 1)), high)

    def chance(self, p: float) -> bool:
        return self._rng.random() < p


def _bursts(config: WickScenario, rng: _Random) -> list[Burst]:
    """One burst per time slot, at a random time that leaves `settle_s` before the next slot, symbols taking turns."""
    slot, shape, out = config._slot_s(), config.wick, []
    for i in range(config.bursts):
        at_s = config.warmup_s + slot * i + rng.uniform(0.0, slot - config.settle_s)
        deep = rng.chance(shape.deep_chance)
        depth = rng.uniform(*shape.deep_depth_bps) if deep else \
            min(rng.lognormal(shape.median_depth_bps, shape.depth_sigma), shape.max_depth_bps)
        out.append(Burst(
            symbol=config.symbols[i % len(config.symbols)], ts_ns=config.start_ns + round(at_s * 1e3) * _MS,
            liquidated="LONG" if rng.chance(0.5) else "SHORT", depth_bps=depth,
            reversion=rng.uniform(*shape.reversion), push_ns=round(rng.uniform(*shape.push_s) * 1e3) * _MS,
            revert_ns=round(rng.uniform(*shape.revert_s) * NS_PER_S),
            notional=config.notional_per_bps * depth * rng.lognormal(1.0, 0.3),
            liquidations=rng.integer(*config.liquidations)))
    return out


# An event before it becomes records: (event time, sort rank, kind, burst index and weight for liquidations)
_Event = tuple[int, int, str, int, float]


class _SymbolMarket:
    """One symbol's market, walked in event time: mid path, book, trades, liquidations, tickers."""

    def __init__(self, config: WickScenario, symbol: str, bursts: list[Burst], rng: _Random) -> None:
        self.config, self.symbol, self.bursts, self.rng = config, symbol, bursts, rng
        self.tick, self.step = Decimal(config.tick_size), Decimal(config.qty_step)
        self.tick_f, self.step_f = float(self.tick), float(self.step)
        self.walk, self.walk_ns = math.log(config.base_price), config.start_ns
        self.settled_offset, self.next_burst = 0.0, 0  # wicks already settled, the first one that is not
        self.books: tuple[dict[int, str], dict[int, str]] | None = None  # price in ticks -> size text
        self.update_id = self.trades = self.tickers = self.liquidations = 0
        self.last_trade_ticks: int | None = None
        self.prices: dict[int, str] = {}  # price text by ticks, made once
        self.open_interest = 500_000.0  # base units

    # -- the price path ------------------------------------------------------------------------------------------

    def mid(self, ts_ns: int) -> float:
        """Advance the random walk to `ts_ns` (events come in time order) and add every wick's offset."""
        dt_s = (ts_ns - self.walk_ns) / NS_PER_S
        if dt_s > 0:
            self.walk += self.config.volatility_bps * 1e-4 * math.sqrt(dt_s) * self.rng.normal()
            self.walk_ns = ts_ns
        while self.next_burst < len(self.bursts) and self.bursts[self.next_burst].settled_ns() <= ts_ns:
            burst = self.bursts[self.next_burst]
            self.settled_offset += burst.offset(burst.settled_ns())
            self.next_burst += 1
        return math.exp(self.walk + self.settled_offset + sum(b.offset(ts_ns) for b in self._live(ts_ns)))

    def _live(self, ts_ns: int) -> Iterator[Burst]:
        """The bursts started by `ts_ns` whose wicks have not settled."""
        for i in range(self.next_burst, len(self.bursts)):
            if self.bursts[i].ts_ns > ts_ns:
                return
            yield self.bursts[i]

    def pushing(self, ts_ns: int) -> Burst | None:
        return next((b for b in self._live(ts_ns) if b.pushing(ts_ns)), None)

    def touch(self, mid: float) -> tuple[int, int]:
        """Best bid and ask in ticks: one tick apart around the mid."""
        bid = math.floor(mid / self.tick_f)
        return bid, bid + 1

    # -- text and times ------------------------------------------------------------------------------------------

    def price(self, ticks: int) -> str:
        text = self.prices.get(ticks)
        if text is None:
            text = self.prices[ticks] = format(ticks * self.tick, "f")
        return text

    def size(self, amount: float) -> str:
        """At least one lot, rounded down to the lot."""
        lots = (Decimal(repr(max(amount, self.step_f))) / self.step).to_integral_value(ROUND_FLOOR)
        return format(lots * self.step, "f")

    def received(self, ts_exchange_ns: int) -> int:
        return ts_exchange_ns + round(self.config.feed_latency_ms * self.rng.uniform(0.5, 1.5) * _MS)

    def event_id(self, kind: str, n: int | str) -> str:
        return f"synthetic-{self.symbol}-{kind}-{n}"

    # -- records -------------------------------------------------------------------------------------------------

    def book(self, ts_ns: int) -> list[ScenarioRecord]:
        """The book around the mid: a snapshot first, then deltas of the levels that changed (size 0: removed)."""
        bid, ask = self.touch(self.mid(ts_ns))
        levels = self.config.book_levels
        old_bids, old_asks = self.books or ({}, {})
        bids = self._side(old_bids, range(bid, bid - levels, -1), bid)
        asks = self._side(old_asks, range(ask, ask + levels), ask)
        snapshot, self.books = self.books is None, (bids, asks)
        self.update_id += 1
        recv = self.received(ts_ns)
        update = BookUpdate(
            venue=VENUE, symbol=self.symbol, event_id=self.event_id("book", self.update_id), ts_event_ns=ts_ns,
            ts_exchange_ns=ts_ns, ts_recv_ns=recv, update_type="SNAPSHOT" if snapshot else "DELTA", depth=levels,
            update_id=self.update_id, seq=self.update_id,
            bids=self._delta(old_bids, bids, reverse=True), asks=self._delta(old_asks, asks, reverse=False))
        return [update, self._top(ts_ns, recv, (bid, bids[bid]), (ask, asks[ask]))]

    def _side(self, old: dict[int, str], prices: range, best: int) -> dict[int, str]:
        """Levels that stay keep their size but for two redrawn ones; new levels get a fresh size, deeper is bigger."""
        out = {ticks: old.get(ticks) or self._level_size(ticks, best) for ticks in prices}
        for _ in range(2):
            ticks = prices[self.rng.integer(0, len(prices) - 1)]
            out[ticks] = self._level_size(ticks, best)
        return out

    def _level_size(self, ticks: int, best: int) -> str:
        return self.size(self.rng.lognormal(20.0 * (1 + abs(ticks - best) / 5), 0.5))

    def _delta(self, old: dict[int, str], new: dict[int, str], *, reverse: bool) -> tuple[BookLevel, ...]:
        changed = {t: s for t, s in new.items() if old.get(t) != s} | {t: "0" for t in old if t not in new}
        return tuple(BookLevel(self.price(t), changed[t]) for t in sorted(changed, reverse=reverse))

    def _top(self, ts_ns: int, recv: int, bid: tuple[int, str], ask: tuple[int, str]) -> TopOfBook:
        bid_f, ask_f = bid[0] * self.tick_f, ask[0] * self.tick_f
        bid_size, ask_size = float(bid[1]), float(ask[1])
        return TopOfBook(
            venue=VENUE, symbol=self.symbol, event_id=self.event_id("top", self.update_id), ts_event_ns=ts_ns,
            ts_exchange_ns=ts_ns, ts_recv_ns=recv, update_id=self.update_id, bid_price=self.price(bid[0]),
            bid_size=bid[1], ask_price=self.price(ask[0]), ask_size=ask[1], mid=(bid_f + ask_f) / 2,
            microprice=(bid_f * ask_size + ask_f * bid_size) / (bid_size + ask_size))

    def trade(self, ts_ns: int) -> list[ScenarioRecord]:
        """A taker trade at the touch; while a wick is pushed, most takers trade in its direction."""
        bid, ask = self.touch(self.mid(ts_ns))
        burst = self.pushing(ts_ns)
        down = 0.5 if burst is None else (0.85 if burst.direction < 0 else 0.15)
        side: Side = "SELL" if self.rng.chance(down) else "BUY"
        return [self._trade(ts_ns, side, bid if side == "SELL" else ask, self.rng.lognormal(2.0, 1.0))]

    def _trade(self, ts_ns: int, side: Side, ticks: int, amount: float) -> Trade:
        self.trades += 1
        self.last_trade_ticks = ticks
        exchange = ts_ns + self.rng.integer(0, 3) * _MS
        return Trade(venue=VENUE, symbol=self.symbol, event_id=self.event_id("trade", self.trades), ts_event_ns=ts_ns,
                     ts_exchange_ns=exchange, ts_recv_ns=self.received(exchange), taker_side=side,
                     price=self.price(ticks), size=self.size(amount), seq=self.trades)

    def liquidation(self, ts_ns: int, burst: Burst, weight: float) -> list[ScenarioRecord]:
        """A forced order sweeping one to four levels from the touch, then the liquidation record itself."""
        mid = self.mid(ts_ns)
        bid, ask = self.touch(mid)
        amount = weight * burst.notional / mid
        levels = self.rng.integer(1, 4)
        side: Side = "SELL" if burst.direction < 0 else "BUY"
        start = bid if side == "SELL" else ask
        sweep = [self._trade(ts_ns, side, start + burst.direction * i, amount / levels) for i in range(levels)]
        self.open_interest = max(self.open_interest - amount, amount)
        exchange = -(-ts_ns // (_LIQUIDATION_PUSH_MS * _MS)) * _LIQUIDATION_PUSH_MS * _MS  # the next push
        self.liquidations += 1
        liquidation = Liquidation(
            venue=VENUE, symbol=self.symbol, event_id=self.event_id("liquidation", self.liquidations),
            ts_event_ns=ts_ns, ts_exchange_ns=exchange, ts_recv_ns=self.received(exchange),
            position_side=burst.liquidated, bankruptcy_price=self.price(start + burst.direction * levels),
            size=self.size(amount), feed="allLiquidation")
        return [*sweep, liquidation]

    def ticker(self, ts_ns: int) -> list[ScenarioRecord]:
        """Mark, index, last price, open interest (a slow walk, cut by liquidations) and the funding schedule."""
        mid = self.mid(ts_ns)
        self.tickers += 1
        self.open_interest *= 1.0 + 2e-4 * self.rng.normal()
        mark = round(mid / self.tick_f)
        bid, ask = self.touch(mid)
        return [Ticker(
            venue=VENUE, symbol=self.symbol, event_id=self.event_id("ticker", self.tickers), ts_event_ns=ts_ns,
            ts_exchange_ns=ts_ns, ts_recv_ns=self.received(ts_ns),
            last_price=self.price(self.last_trade_ticks if self.last_trade_ticks is not None else mark),
            mark_price=self.price(mark), index_price=self.price(mark), funding_rate="0.0001",
            next_funding_time_ns=(ts_ns // _FUNDING_EVERY_NS + 1) * _FUNDING_EVERY_NS, funding_interval_hours=8,
            open_interest=self.size(self.open_interest), open_interest_value=f"{self.open_interest * mid:.2f}",
            bid1_price=self.price(bid), ask1_price=self.price(ask), seq=self.tickers)]

    def instrument(self) -> Instrument:
        ts_ns = self.config.start_ns
        return Instrument(
            venue=VENUE, symbol=self.symbol, event_id=self.event_id("instrument", 1), ts_event_ns=ts_ns,
            ts_exchange_ns=ts_ns, ts_recv_ns=self.received(ts_ns), status="Trading", contract_type="LinearPerpetual",
            base_coin=self.symbol.removesuffix("USDT"), quote_coin="USDT", tick_size=self.config.tick_size,
            qty_step=self.config.qty_step, min_order_qty=self.config.qty_step, max_order_qty="1000000",
            min_notional="5", max_leverage="25", funding_interval_minutes=480)

    # -- the schedule --------------------------------------------------------------------------------------------

    def events(self) -> list[_Event]:
        """Every event of the symbol in time order: book and ticker clocks, Poisson trades, the bursts' liquidations."""
        c = self.config
        out: list[_Event] = [(t, 1, "book", 0, 0.0) for t in range(c.start_ns, c.end_ns, c.book_interval_ms * _MS)]
        out += [(t, 3, "ticker", 0, 0.0) for t in range(c.start_ns, c.end_ns, c.ticker_interval_ms * _MS)]
        out += [(t, 4, "trade", 0, 0.0) for t in self._poisson(c.start_ns, c.end_ns, c.trades_per_s)]
        for i, burst in enumerate(self.bursts):
            push_end = burst.ts_ns + burst.push_ns
            out += [(t, 4, "trade", 0, 0.0)
                    for t in self._poisson(burst.ts_ns, push_end, c.trades_per_s * c.burst_trade_factor)]
            weights = [self.rng.exponential(1.0) for _ in range(burst.liquidations)]
            times = sorted(burst.ts_ns + round(self.rng.uniform(0.0, 1.0) * burst.push_ns / _MS) * _MS
                           for _ in weights[1:])
            out += [(t, 5, "liquidation", i, w / sum(weights))
                    for t, w in zip([burst.ts_ns, *times], weights, strict=True)]
        out.sort(key=lambda e: e[:2])  # stable: equal times keep the order above
        return out

    def _poisson(self, start_ns: int, end_ns: int, rate: float) -> Iterator[int]:
        """Event times in whole milliseconds (as the exchange stamps them)."""
        t = float(start_ns)
        while True:
            t += self.rng.exponential(NS_PER_S / rate)
            if t >= end_ns:
                return
            yield int(t) // _MS * _MS

    def records(self) -> Iterator[tuple[tuple[int, int, int], ScenarioRecord]]:
        """(sort key, record) of every record of the symbol."""
        yield (self.config.start_ns, 0, 0), self.instrument()
        made_by = {"book": self.book, "trade": self.trade, "ticker": self.ticker}
        for n, (ts_ns, _, kind, burst, weight) in enumerate(self.events()):
            if kind == "liquidation":
                made = self.liquidation(ts_ns, self.bursts[burst], weight)
            else:
                made = made_by[kind](ts_ns)
            for j, record in enumerate(made):  # a liquidation makes at most 5 records: its sweep and itself
                yield (ts_ns, _RANK[type(record)], n * 8 + j), record


@dataclass(frozen=True)
class Scenario:
    """A generated SYNTHETIC market: its records in event-time order, and the bursts it built in."""

    config: WickScenario
    records: tuple[ScenarioRecord, ...]
    bursts: tuple[Burst, ...]

    def market_records(self) -> list[MarketRecord]:
        """What features fold in (everything but the instrument listing)."""
        return [r for r in self.records if not isinstance(r, Instrument)]

    def burst_at(self, symbol: str, ts_ns: int) -> Burst | None:
        """The newest burst of `symbol` that started at or before `ts_ns`."""
        mine = [b for b in self.bursts if b.symbol == symbol]
        i = bisect_right([b.ts_ns for b in mine], ts_ns)
        return mine[i - 1] if i else None

    def sha256(self) -> str:
        """Content hash of every record (schema and Avro datum), for the model card."""
        digest = hashlib.sha256()
        for record in self.records:
            digest.update(json.dumps([record.SCHEMA, record.to_avro()], sort_keys=True).encode())
        return digest.hexdigest()


@lru_cache(maxsize=4)
def generate(config: WickScenario) -> Scenario:
    """The scenario of `config`: deterministic (same config, same records), ordered by event time."""
    rng = _Random(f"bursts|{config.seed}")
    bursts = _bursts(config, rng)
    keyed: list[tuple[tuple[int, int, int, int], ScenarioRecord]] = []
    for s, symbol in enumerate(config.symbols):
        market = _SymbolMarket(config, symbol, [b for b in bursts if b.symbol == symbol],
                               _Random(f"market|{config.seed}|{symbol}"))
        keyed += [((ts, rank, s, n), record) for (ts, rank, n), record in market.records()]
    keyed.sort(key=lambda kr: kr[0])
    return Scenario(config, tuple(r for _, r in keyed), tuple(bursts))


@dataclass(frozen=True)
class ScenarioSource:
    """The scenario as a training source (`training.dataset.Source`): decision points at its liquidations."""

    config: WickScenario = field(default_factory=WickScenario)
    venue: str = VENUE

    def name(self) -> str:
        return f"SYNTHETIC training/scenario.py WickScenario(seed={self.config.seed})"

    def sha256(self) -> str:
        return generate(self.config).sha256()

    def records(self) -> list[MarketRecord]:
        return generate(self.config).market_records()

    def rule(self) -> DecisionRule:
        return AtLiquidations()
