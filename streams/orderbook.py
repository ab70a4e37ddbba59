"""Order books rebuilt from snapshots and deltas with update-id checks; never published across a gap."""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from schemas.records import AvroRecord, BookLevel, BookUpdate, TopOfBook

__all__ = ["BookBuilder", "BookStep", "OrderBook"]


@dataclass
class OrderBook:
    """Price levels of one book; price floats order the levels, the venue's text is what is kept."""

    bids: dict[float, BookLevel] = field(default_factory=dict)
    asks: dict[float, BookLevel] = field(default_factory=dict)
    update_id: int = -1
    fresh: bool = False  # a snapshot and no delta yet: the next delta may bridge it
    # Best prices kept across deltas, because a scan of a 1000-level side per delta dominated the cost;
    # None: not known, found by a scan when asked (after the best level was removed).
    _best_bid: float | None = None
    _best_ask: float | None = None

    def reset(self, update: BookUpdate) -> None:
        self.bids = {float(lv.price): lv for lv in update.bids if float(lv.size) != 0.0}
        self.asks = {float(lv.price): lv for lv in update.asks if float(lv.size) != 0.0}
        self._best_bid = self._best_ask = None
        self.update_id = update.update_id
        self.fresh = True

    def apply(self, update: BookUpdate) -> None:
        self._best_bid = _apply_side(self.bids, update.bids, self._best_bid, better=float.__gt__)
        self._best_ask = _apply_side(self.asks, update.asks, self._best_ask, better=float.__lt__)
        self.update_id = update.update_id
        self.fresh = False

    def best(self) -> tuple[BookLevel, BookLevel] | None:
        """Best bid and best ask, or None while a side is empty."""
        if not self.bids or not self.asks:
            return None
        if self._best_bid is None:
            self._best_bid = max(self.bids)
        if self._best_ask is None:
            self._best_ask = min(self.asks)
        return self.bids[self._best_bid], self.asks[self._best_ask]

    def top(self, levels: int) -> tuple[list[BookLevel], list[BookLevel]]:
        """The best `levels` bids (highest first) and asks (lowest first)."""
        return ([self.bids[p] for p in heapq.nlargest(levels, self.bids)],
                [self.asks[p] for p in heapq.nsmallest(levels, self.asks)])

    def checksum(self, levels: int = 25) -> int:
        """CRC32 of the top `levels` of each side as text: a cheap fingerprint to compare two books."""
        bids, asks = self.top(levels)
        text = "|".join(f"{lv.price}:{lv.size}" for lv in (*bids, *asks))
        return zlib.crc32(text.encode())


def _apply_side(side: dict[float, BookLevel], levels: tuple[BookLevel, ...], best: float | None,
                better: Callable[[float, float], bool]) -> float | None:
    """Apply one side's levels (size 0 removes); returns the side's best price, None when a rescan is due."""
    for lv in levels:
        price = float(lv.price)
        if float(lv.size) == 0.0:
            if side.pop(price, None) is not None and price == best:
                best = None
        else:
            side[price] = lv
            if best is not None and better(price, best):
                best = price
    return best


@dataclass(frozen=True, slots=True)
class BookStep:
    """What one update produced: records to publish, and whether it revealed a gap or was dropped."""

    records: tuple[AvroRecord, ...]
    gap: bool = False
    dropped: bool = False
    reason: str = ""


Key = tuple[str, str, int]
MAX_PENDING = 10_000  # deltas held per book while its first snapshot is on its way


@dataclass
class BookBuilder:
    """All books of one feed, keyed by (venue, symbol, depth).

    Deltas that arrive before a book's snapshot are held: Binance's procedure subscribes first and fetches the
    REST snapshot afterwards, and the delta that bridges it (pu < lastUpdateId <= u) may well come first.
    """

    books: dict[Key, OrderBook] = field(default_factory=dict)
    pending: dict[Key, list[BookUpdate]] = field(default_factory=dict)

    def apply(self, update: BookUpdate) -> BookStep:
        key = (update.venue, update.symbol, update.depth)
        if update.update_type == "SNAPSHOT":
            return self._snapshot(key, update)
        book = self.books.get(key)
        if book is None:
            held = self.pending.setdefault(key, [])
            if len(held) < MAX_PENDING:
                held.append(update)
            return BookStep((), dropped=True, reason="delta before any snapshot (held for the snapshot)")
        if book.fresh and update.update_id <= book.update_id:
            return BookStep((), dropped=True, reason="delta older than the snapshot")
        return self._delta(key, book, update)

    def _snapshot(self, key: Key, update: BookUpdate) -> BookStep:
        book = self.books.setdefault(key, OrderBook())
        book.reset(update)
        out: list[AvroRecord] = [update, *_top(update, book)]
        for held in self.pending.pop(key, []):
            if held.update_id <= book.update_id:
                continue  # already in the snapshot
            step = self._delta(key, book, held)
            out.extend(step.records)
            if step.gap:
                return BookStep(tuple(out), gap=True, reason=step.reason)
        return BookStep(tuple(out))

    def _delta(self, key: Key, book: OrderBook, update: BookUpdate) -> BookStep:
        if not _follows(book, update):
            expected = update.prev_update_id if update.prev_update_id is not None else update.update_id - 1
            return self._gap(key, update, f"update {update.update_id} follows {expected}, book is at {book.update_id}")
        book.apply(update)
        top = _top(update, book)
        if top and float(top[0].bid_price) >= float(top[0].ask_price):
            return self._gap(key, update, f"crossed book: bid {top[0].bid_price} >= ask {top[0].ask_price}")
        return BookStep((update, *top))

    def _gap(self, key: Key, update: BookUpdate, reason: str) -> BookStep:
        """Forget the book: nothing more is published for it until the next snapshot."""
        self.pending.pop(key, None)
        book = self.books.pop(key)
        marker = replace(update, update_type="RESYNC", event_id=f"{update.event_id}:resync", bids=(), asks=(),
                         prev_update_id=book.update_id)
        return BookStep((marker,), gap=True, reason=reason)


def _follows(book: OrderBook, update: BookUpdate) -> bool:
    """Continuity: the venue's previous id when it sends one, else consecutive ids; a snapshot may be bridged."""
    if update.prev_update_id is None:
        return update.update_id == book.update_id + 1
    if book.fresh:
        return update.prev_update_id <= book.update_id <= update.update_id
    return update.prev_update_id == book.update_id


def _top(update: BookUpdate, book: OrderBook) -> tuple[TopOfBook, ...]:
    best = book.best()
    if best is None:
        return ()
    bid, ask = best
    bid_px, ask_px, bid_sz, ask_sz = float(bid.price), float(ask.price), float(bid.size), float(ask.size)
    return (TopOfBook(
        venue=update.venue, symbol=update.symbol, event_id=update.event_id, ts_event_ns=update.ts_event_ns,
        ts_exchange_ns=update.ts_exchange_ns, ts_recv_ns=update.ts_recv_ns, update_id=update.update_id,
        bid_price=bid.price, bid_size=bid.size, ask_price=ask.price, ask_size=ask.size,
        mid=(bid_px + ask_px) / 2, microprice=(bid_px * ask_sz + ask_px * bid_sz) / (bid_sz + ask_sz),
    ),)
