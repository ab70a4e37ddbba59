"""Order books rebuilt from snapshots and deltas with update-id checks; never published across a gap.

The books are compiled (`core/src/book.rs`): the one implementation, which the compiled frame path
and the Python path of ingest both apply updates to, and which feature code folds records into. This module is
their Python face.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping

from liqbot_core import Book as _Book
from liqbot_core import BookBuilder as _BookBuilder
from liqbot_core import BookStep

from schemas.records import BookLevel, BookUpdate
from streams.avro import SerdeError

__all__ = ["BookBuilder", "BookSide", "BookStep", "OrderBook"]


class OrderBook:
    """Price levels of one book; price floats order the levels, the venue's text is what is kept."""

    __slots__ = ("_book",)

    def __init__(self, native: _Book | None = None) -> None:
        self._book = _Book() if native is None else native

    def reset(self, update: BookUpdate) -> None:
        """The book a snapshot describes (levels of size 0 left out)."""
        self._book.reset(update)

    def apply(self, update: BookUpdate) -> None:
        """A delta's levels: each replaces the level at its price, size 0 removes it."""
        self._book.apply(update)

    @property
    def update_id(self) -> int:
        return self._book.update_id

    @property
    def fresh(self) -> bool:
        """A snapshot and no delta yet: the next delta may bridge it."""
        return self._book.fresh

    @property
    def bids(self) -> BookSide:
        return BookSide(self._book, bid=True)

    @property
    def asks(self) -> BookSide:
        return BookSide(self._book, bid=False)

    def best(self) -> tuple[BookLevel, BookLevel] | None:
        """Best bid and best ask, or None while a side is empty."""
        bids, asks = self.top(1)
        return (bids[0], asks[0]) if bids and asks else None

    def top(self, levels: int) -> tuple[list[BookLevel], list[BookLevel]]:
        """The best `levels` bids (highest first) and asks (lowest first)."""
        bids, asks = self._book.top(levels)
        return [BookLevel(p, s) for p, s in bids], [BookLevel(p, s) for p, s in asks]

    def checksum(self, levels: int = 25) -> int:
        """CRC32 of the top `levels` of each side as text: a cheap fingerprint to compare two books."""
        bids, asks = self.top(levels)
        text = "|".join(f"{lv.price}:{lv.size}" for lv in (*bids, *asks))
        return zlib.crc32(text.encode())


class BookSide(Mapping[float, BookLevel]):
    """One side of a book by price, read-only; iterates from the best price."""

    __slots__ = ("_bid", "_book")

    def __init__(self, book: _Book, *, bid: bool) -> None:
        self._book, self._bid = book, bid

    def __getitem__(self, price: float) -> BookLevel:
        level = self._book.level(self._bid, price)
        if level is None:
            raise KeyError(price)
        return BookLevel(*level)

    def __len__(self) -> int:
        return self._book.count(self._bid)

    def __iter__(self) -> Iterator[float]:
        return iter(self._book.prices(self._bid))


class BookBuilder:
    """All books of one feed, keyed by (venue, symbol, depth).

    Deltas that arrive before a book's snapshot are held: Binance's procedure subscribes first and fetches the
    REST snapshot afterwards, and the delta that bridges it (pu < lastUpdateId <= u) may well come first.
    """

    __slots__ = ("native",)

    def __init__(self) -> None:
        self.native = _BookBuilder()  # what the compiled frame path applies its updates to

    def apply(self, update: BookUpdate) -> BookStep:
        """The records to publish, Avro-encoded; SerdeError (book untouched) for an update its schema refuses."""
        try:
            return self.native.apply(update)
        except ValueError as exc:
            raise SerdeError(f"cannot encode {update.SCHEMA}: {exc}", schema=update.SCHEMA) from exc

    def book(self, venue: str, symbol: str, depth: int) -> OrderBook | None:
        """A copy of one book as it is now; None before its snapshot and after a gap."""
        native = self.native.book(venue, symbol, depth)
        return None if native is None else OrderBook(native)
