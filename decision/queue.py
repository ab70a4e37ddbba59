"""Queue position of a resting paper order at its price level (opt-in), after hftbacktest's queue models.

A post-only limit always fills on a trade printed strictly through its price. With a queue model it can also
fill on a trade *at* its price, once the size ahead of it at that level is used up:

- at placement, ahead = the level's size in the recorded book as of placement (`queue_ahead`);
- a trade at the price: ahead -= its size, and the order fills when ahead < 0 (the trade reached past the
  queue; whole, as hftbacktest's no-partial-fill exchange fills);
- the level's size changes from `prev` to `new` in the book: `risk_averse` only caps, ahead = min(ahead, new);
  the probabilistic models split a decrease not explained by trades, chg = prev - new - traded since the last
  change, between the front and the back of the queue: with back = prev - ahead and p = f(back) / (f(back) +
  f(ahead)) the chance that it came from behind us (`log_prob`: f(x) = log(1 + x); `power_prob:N`: f(x) = x^N),
  ahead = min(ahead - (1 - p) chg + min(back - p chg, 0), new). An increase joins behind us: ahead = min(ahead, new).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from schemas.records import BookUpdate, Side, TopOfBook
from streams.orderbook import OrderBook

__all__ = ["QUEUE_FORMS", "QueueKind", "QueueModel", "QueuePosition", "VenueBook", "parse_queue", "queue_ahead"]

QueueKind = Literal["none", "risk_averse", "log_prob", "power_prob"]
QUEUE_FORMS = "none, risk_averse, log_prob or power_prob:N (N > 0, e.g. power_prob:2)"
_KINDS: tuple[QueueKind, ...] = ("none", "risk_averse", "log_prob", "power_prob")
_EPS = 1e-9  # sizes closer to zero than this are float noise: every venue's lot is far larger
UNKNOWN = math.inf  # the size ahead of an order deeper than the recorded book


@dataclass(frozen=True, kw_only=True)
class QueueModel:
    """Which queue model the paper venue runs: `none` (the default: only trades through the price fill)."""

    kind: QueueKind = "none"
    power: float = 2.0  # power_prob's N; unused by the others

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"queue model {self.kind!r} is not one of {QUEUE_FORMS}")
        if not (math.isfinite(self.power) and self.power > 0):
            raise ValueError(f"power_prob's N must be a finite number > 0, not {self.power!r}")

    @property
    def on(self) -> bool:
        return self.kind != "none"

    def behind(self, ahead: float, back: float) -> float:
        """The probability that a decrease of the level came from behind the order."""
        f_back, f_ahead = (math.log1p(back), math.log1p(ahead)) if self.kind == "log_prob" else \
            (back ** self.power, ahead ** self.power)
        total = f_back + f_ahead
        return f_back / total if total > 0 else 1.0  # an empty level: nothing ahead to advance past


def parse_queue(text: str) -> QueueModel:
    """A queue model as written on the command line; ValueError saying what to write instead."""
    kind, _, power = text.strip().partition(":")
    if kind == "power_prob":
        try:
            return QueueModel(kind="power_prob", power=float(power))
        except ValueError:
            raise ValueError(f"queue model {text!r}: power_prob needs its N, one of {QUEUE_FORMS}") from None
    if power or kind not in _KINDS:
        raise ValueError(f"queue model {text!r} is not one of {QUEUE_FORMS}")
    return QueueModel(kind=kind)


@dataclass
class QueuePosition:
    """The size ahead of one resting order at its level (UNKNOWN: deeper than the book), and what traded there
    since the level last changed (a later decrease of the level already holds it: not counted twice)."""

    ahead: float
    traded: float = 0.0

    def on_trade(self, size: float) -> bool:
        """A trade at the order's price; whether it reached past the queue (the order fills)."""
        self.ahead -= size
        self.traded += size
        return self.ahead < -_EPS

    def on_level(self, model: QueueModel, prev: float | None, new: float) -> None:
        """The level went from `prev` (None: no book before) to `new`."""
        traded, self.traded = self.traded, 0.0
        if self.ahead == UNKNOWN:
            if new > _EPS:  # the level as first seen in the book: all of it is ahead
                self.ahead = new
            return
        if prev is None:
            return  # no book to compare with (before a snapshot, after a resync)
        change = prev - new - traded
        if model.kind == "risk_averse" or change < 0:
            self.ahead = min(self.ahead, new)
            return
        back = max(prev - self.ahead, 0.0)
        p = model.behind(max(self.ahead, 0.0), back)
        self.ahead = min(self.ahead - (1 - p) * change + min(back - p * change, 0.0), new)


@dataclass
class VenueBook:
    """The symbol's recorded L2 book as the venue reads it: one depth, the deepest whose snapshot came."""

    depth: int = -1
    book: OrderBook | None = None

    def fold(self, update: BookUpdate) -> None:
        """A book update of this symbol; other depths than the one kept are left out (one book, one queue)."""
        if update.update_type == "SNAPSHOT" and update.depth >= self.depth:
            self.depth, self.book = update.depth, OrderBook()
            self.book.reset(update)
        elif update.depth != self.depth:
            return
        elif update.update_type == "RESYNC":
            self.book = None  # unknown until the next snapshot
        elif self.book is not None:
            self.book.apply(update)

    def size_at(self, side: Side, price: float) -> float | None:
        """The size at a price of our side (0 where no level is); None without a book."""
        if self.book is None:
            return None
        level = (self.book.bids if side == "BUY" else self.book.asks).get(price)
        return 0.0 if level is None else float(level.size)

    def deeper(self, side: Side, price: float) -> bool:
        """Whether a price lies beyond the deepest level the book holds (or the book holds none of our side)."""
        if self.book is None:
            return True
        prices = list(self.book.bids if side == "BUY" else self.book.asks)
        if not prices:
            return True
        return price < prices[-1] if side == "BUY" else price > prices[-1]


def queue_ahead(side: Side, price: float, top: TopOfBook | None, book: VenueBook) -> float:
    """The size ahead of a new order: 0 inside the spread, the top's size at the best, else the book's level
    (0 where the book has no level), UNKNOWN beyond the book's depth."""
    if top is not None:
        best = float(top.bid_price if side == "BUY" else top.ask_price)
        if (price > best) if side == "BUY" else (price < best):
            return 0.0
        if price == best:
            return float(top.bid_size if side == "BUY" else top.ask_size)
    if book.deeper(side, price):
        return UNKNOWN
    size = book.size_at(side, price)
    return UNKNOWN if size is None else size
