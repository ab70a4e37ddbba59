"""Bybit's public daily trade archive (CSV, plain or gzip) to `Trade` records.

Columns: timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional.
The archive has no message or receive time: both are set to the trade time. grossValue and the notionals
are derived from size and price and are not kept.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from schemas.records import Side, Trade
from streams.capture import open_text
from streams.venue import ParseError, decimal_text

__all__ = ["COLUMNS", "ArchiveRow", "read_trade_archive"]

COLUMNS = ["timestamp", "symbol", "side", "size", "price", "tickDirection", "trdMatchID", "grossValue",
           "homeNotional", "foreignNotional"]
_SIDES: dict[str, Side] = {"Buy": "BUY", "Sell": "SELL"}


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    """One CSV row: its trade, or why it is not one (`raw` keeps the row as read)."""

    line_no: int
    raw: str
    trade: Trade | None = None
    error: str = ""


def read_trade_archive(path: Path, venue: str = "bybit-linear") -> Iterator[ArchiveRow]:
    with open_text(path) as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header != COLUMNS:
            raise ParseError(f"{path}: header {header} is not Bybit's trade archive header {COLUMNS}")
        for row in reader:
            raw = ",".join(row)
            try:
                yield ArchiveRow(reader.line_num, raw, trade=_trade(row, venue))
            except (ParseError, ValueError, InvalidOperation, KeyError) as exc:
                yield ArchiveRow(reader.line_num, raw, error=f"{path.name}:{reader.line_num}: {exc}")


def _trade(row: list[str], venue: str) -> Trade:
    if len(row) != len(COLUMNS):
        raise ValueError(f"{len(row)} columns, expected {len(COLUMNS)}")
    fields = dict(zip(COLUMNS, row, strict=True))
    if fields["side"] not in _SIDES:
        raise ValueError(f"side {fields['side']!r} is neither Buy nor Sell")
    ts_ns = int(Decimal(fields["timestamp"]) * 1_000_000_000)
    where = f"archive {fields['symbol']}"
    return Trade(
        venue=venue, symbol=fields["symbol"], event_id=fields["trdMatchID"], ts_event_ns=ts_ns,
        ts_exchange_ns=ts_ns, ts_recv_ns=ts_ns, taker_side=_SIDES[fields["side"]],
        price=decimal_text(where, "price", fields["price"]), size=decimal_text(where, "size", fields["size"]),
        tick_direction=fields["tickDirection"] or None,
    )
