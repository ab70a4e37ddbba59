"""Pure functions from Binance USD-M futures public frames and REST replies to typed records."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from liqbot_core import binance_hot

from schemas.records import BookLevel, BookUpdate, BookUpdateType, Liquidation, PositionSide, Side, TopOfBook, Trade
from streams.venue import (
    BookStep,
    Encoded,
    NativeBooks,
    Parsed,
    ParseError,
    all_decimal_text,
    decimal_text,
    json_object,
    ms_to_ns,
    reading,
)

__all__ = ["BinanceUsdmParser", "DepthSnapshotParser", "parse_depth_snapshot"]

VENUE = "binance-usdm"
# A diff-depth stream maintains the whole book, which is built on a REST snapshot of at most 1000 levels.
DIFF_DEPTH = 1000
# forceOrder's `S` is the side of the liquidation ORDER: selling closes a long, buying closes a short.
_POSITION_SIDE: dict[str, PositionSide] = {"SELL": "LONG", "BUY": "SHORT"}
# Insurance-fund takeovers and ADL fills are transfers at a computed price (often off the tick grid), not prints
# of the order book; NA is Binance's placeholder. Only MARKET trades are trades a taker made against the book.
_NON_MARKET_TRADES = frozenset({"INSURANCE_FUND", "ADL", "NA"})


@dataclass
class BinanceUsdmParser:
    """Parses public frames of one connection: combined-stream envelopes or bare events."""

    venue: str = VENUE
    _diff_depth_symbols: set[str] = field(default_factory=set)  # whose REST snapshot this connection may carry

    def encoded(self, frame_text: str | bytes, ts_recv_ns: int, books: NativeBooks) -> Encoded | BookStep | None:
        """trade, aggTrade, bookTicker and depthUpdate frames through the compiled path (equal to `parse` + book)."""
        hot = binance_hot(frame_text, ts_recv_ns, self.venue, books)
        if type(hot) is BookStep and hot.update_type == "DELTA":
            self._diff_depth_symbols.add(hot.symbol)  # as `_depth_update` does
        return hot

    def parse(self, frame_text: str | bytes, ts_recv_ns: int) -> Parsed:
        frame = json_object(frame_text)
        stream, event = _unwrap(frame)
        kind = event.get("e")
        if kind is None:
            return self._without_event_type(stream, event, ts_recv_ns)
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise ParseError(f"unknown event type {kind!r}")
        where = f"event {kind}"
        with reading(where):
            parsed = handler(self, where, stream, event, ts_recv_ns)
        return replace(parsed, topic=stream or kind)

    def _without_event_type(self, stream: str, frame: dict[str, Any], ts_recv_ns: int) -> Parsed:
        if stream:
            raise ParseError(f"stream {stream}: data has no event type 'e'")
        if "result" in frame and "id" in frame:
            return Parsed("control")  # reply to SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS
        if "error" in frame or ("code" in frame and "msg" in frame):
            error = frame.get("error")
            details = error if isinstance(error, dict) else frame
            raise ParseError(f"error reply {frame.get('id')}: code {details.get('code')}: {details.get('msg')}")
        if "lastUpdateId" in frame:
            return self._interleaved_snapshot(frame, ts_recv_ns)
        raise ParseError("frame has neither 'e' nor 'stream' nor 'result'")

    def _interleaved_snapshot(self, reply: dict[str, Any], ts_recv_ns: int) -> Parsed:
        """A REST depth reply recorded among the stream's frames; it names no symbol, so it needs exactly one."""
        if len(self._diff_depth_symbols) != 1:
            raise ParseError(
                f"depth snapshot: the reply names no symbol and this connection's diff-depth streams named "
                f"{len(self._diff_depth_symbols)} symbols; parse it with parse_depth_snapshot(symbol=...)")
        (symbol,) = self._diff_depth_symbols
        return _snapshot(reply, ts_recv_ns, symbol, self.venue, DIFF_DEPTH)

    def _trade(self, where: str, stream: str, event: dict[str, Any], ts_recv_ns: int) -> Parsed:
        trade_type = event["X"]
        if trade_type in _NON_MARKET_TRADES:
            return Parsed("ignored")
        if trade_type != "MARKET":
            raise ParseError(f"{where}: trade type X = {trade_type!r} is not MARKET, INSURANCE_FUND, ADL or NA")
        return Parsed("trade", (self._trade_record(where, str(_int(where, "t", event["t"])), event, ts_recv_ns),))

    def _agg_trade(self, where: str, stream: str, event: dict[str, Any], ts_recv_ns: int) -> Parsed:
        # Binance aggregates MARKET trades only, so there is no X to filter on.
        event_id = f"agg:{_int(where, 'a', event['a'])}"
        return Parsed("trade", (self._trade_record(where, event_id, event, ts_recv_ns),))

    def _trade_record(self, where: str, event_id: str, event: dict[str, Any], ts_recv_ns: int) -> Trade:
        taker_side: Side = "SELL" if _bool(where, "m", event["m"]) else "BUY"  # buyer is maker: the seller took
        return Trade(
            venue=self.venue, symbol=event["s"], event_id=event_id, ts_event_ns=_ms(where, "T", event["T"]),
            ts_exchange_ns=_ms(where, "E", event["E"]), ts_recv_ns=ts_recv_ns, taker_side=taker_side,
            price=_decimal(where, "p", event["p"]), size=_decimal(where, "q", event["q"]),
        )

    def _force_order(self, where: str, stream: str, event: dict[str, Any], ts_recv_ns: int) -> Parsed:
        order = event["o"]
        if not isinstance(order, dict):
            raise ParseError(f"{where}: 'o' is a {type(order).__name__}, expected an object")
        side = order["S"]
        if side not in _POSITION_SIDE:
            raise ParseError(f"{where}: side {side!r} is neither BUY nor SELL")
        # `p` is the liquidation order's limit price, which Binance sets at the position's bankruptcy price
        # (Binance, "How a Liquidation Order Is Executed: Liquidation Price vs. Bankruptcy Price"); `ap` is the
        # average fill, better than `p` (above it for SELL, below for BUY). The field is the bankruptcy price: `p`.
        price = _decimal(where, "p", order["p"])
        filled = _decimal(where, "z", order["z"])
        # An IOC liquidation may fill partly; the filled part is what hit the book. Nothing filled: the order size.
        size = filled if Decimal(filled) != 0 else _decimal(where, "q", order["q"])
        trade_ms = _int(where, "T", order["T"])
        record = Liquidation(
            venue=self.venue, symbol=order["s"], event_id=f"{order['s']}:{trade_ms}:{side}:{price}:{size}:1",
            ts_event_ns=ms_to_ns(trade_ms), ts_exchange_ns=_ms(where, "E", event["E"]), ts_recv_ns=ts_recv_ns,
            position_side=_POSITION_SIDE[side], bankruptcy_price=price, size=size, feed="forceOrder",
        )
        return Parsed("liquidation", (record,))

    def _depth_update(self, where: str, stream: str, event: dict[str, Any], ts_recv_ns: int) -> Parsed:
        depth, update_type = _depth_of(where, stream)
        symbol = event["s"]
        update_id = _int(where, "u", event["u"])
        if update_type == "DELTA":
            self._diff_depth_symbols.add(symbol)
        record = BookUpdate(
            venue=self.venue, symbol=symbol, event_id=f"{symbol}:{depth}:{update_id}",
            ts_event_ns=_ms(where, "T", event["T"]), ts_exchange_ns=_ms(where, "E", event["E"]),
            ts_recv_ns=ts_recv_ns, update_type=update_type, depth=depth, update_id=update_id, seq=None,
            bids=_levels(where, "b", event["b"]), asks=_levels(where, "a", event["a"]),
            prev_update_id=_int(where, "pu", event["pu"]),
        )
        return Parsed("book", (record,))

    def _book_ticker(self, where: str, stream: str, event: dict[str, Any], ts_recv_ns: int) -> Parsed:
        symbol = event["s"]
        update_id = _int(where, "u", event["u"])
        bid, bid_size = _decimal(where, "b", event["b"]), _decimal(where, "B", event["B"])
        ask, ask_size = _decimal(where, "a", event["a"]), _decimal(where, "A", event["A"])
        bid_f, ask_f, bid_size_f, ask_size_f = float(bid), float(ask), float(bid_size), float(ask_size)
        mid = (bid_f + ask_f) / 2
        total = bid_size_f + ask_size_f
        record = TopOfBook(
            venue=self.venue, symbol=symbol, event_id=f"{symbol}:bt:{update_id}",
            ts_event_ns=_ms(where, "T", event["T"]), ts_exchange_ns=_ms(where, "E", event["E"]),
            ts_recv_ns=ts_recv_ns, update_id=update_id, bid_price=bid, bid_size=bid_size, ask_price=ask,
            ask_size=ask_size, mid=mid,
            microprice=(bid_f * ask_size_f + ask_f * bid_size_f) / total if total else mid,
        )
        return Parsed("top_of_book", (record,))


_HANDLERS: dict[str, Callable[[BinanceUsdmParser, str, str, dict[str, Any], int], Parsed]] = {
    "trade": BinanceUsdmParser._trade,
    "aggTrade": BinanceUsdmParser._agg_trade,
    "forceOrder": BinanceUsdmParser._force_order,
    "depthUpdate": BinanceUsdmParser._depth_update,
    "bookTicker": BinanceUsdmParser._book_ticker,
}


def parse_depth_snapshot(reply_text: str | bytes, ts_recv_ns: int, symbol: str, venue: str = VENUE,
                         depth: int = DIFF_DEPTH) -> Parsed:
    """A `/fapi/v1/depth` reply to one SNAPSHOT `BookUpdate`, the base the diff-depth deltas apply to."""
    reply = json_object(reply_text, "depth snapshot: reply")
    if "lastUpdateId" not in reply and "code" in reply:
        raise ParseError(f"depth snapshot: code {reply['code']}: {reply.get('msg')}")
    return _snapshot(reply, ts_recv_ns, symbol.upper(), venue, depth)


def _snapshot(reply: dict[str, Any], ts_recv_ns: int, symbol: str, venue: str, depth: int) -> Parsed:
    where = "depth snapshot"
    with reading(where, "reply"):
        update_id = _int(where, "lastUpdateId", reply["lastUpdateId"])
        record = BookUpdate(
            # ":snapshot" because a delta's u may equal lastUpdateId, and two records must not share an id
            venue=venue, symbol=symbol, event_id=f"{symbol}:{depth}:{update_id}:snapshot",
            ts_event_ns=_ms(where, "T", reply["T"]), ts_exchange_ns=_ms(where, "E", reply["E"]),
            ts_recv_ns=ts_recv_ns, update_type="SNAPSHOT", depth=depth, update_id=update_id, seq=None,
            bids=_levels(where, "bids", reply["bids"]), asks=_levels(where, "asks", reply["asks"]),
        )
    return Parsed("book", (record,), "depth")


def _unwrap(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stream name ("" for a bare event) and the event of a combined-stream envelope."""
    if "stream" not in frame:
        return "", frame
    stream, data = str(frame["stream"]), frame.get("data")
    if not isinstance(data, dict):
        raise ParseError(f"stream {stream}: 'data' is a {type(data).__name__}, expected an object")
    return stream, data


def _depth_of(where: str, stream: str) -> tuple[int, BookUpdateType]:
    """`sym@depth[@speed]` is a diff stream (DELTA); `sym@depthN[@speed]` a full top-N image each time (SNAPSHOT).

    A bare event (raw-stream connection) does not say which; it is taken as a diff stream.
    """
    if not stream:
        return DIFF_DEPTH, "DELTA"
    name = stream.split("@")[1] if "@" in stream else ""
    levels = name.removeprefix("depth")
    if not name.startswith("depth") or not (levels == "" or levels.isdigit()):
        raise ParseError(f"{where}: stream {stream!r} is not a depth stream")
    return (DIFF_DEPTH, "DELTA") if levels == "" else (int(levels), "SNAPSHOT")


def _decimal(where: str, name: str, value: Any) -> str:
    """`decimal_text`'s check, with the message naming the Binance event instead of a Bybit topic."""
    try:
        return decimal_text(where, name, value)
    except ParseError:
        raise ParseError(f"{where}: field {name!r} = {value!r} is not a decimal string") from None


def _int(where: str, name: str, value: Any) -> int:
    # ids and times are JSON integers; a string or float here is a different shape, not one to coerce
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"{where}: field {name!r} = {value!r} is not an integer")
    return value


def _ms(where: str, name: str, value: Any) -> int:
    return ms_to_ns(_int(where, name, value))


def _bool(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParseError(f"{where}: field {name!r} = {value!r} is not a boolean")
    return value


def _levels(where: str, name: str, levels: Any) -> tuple[BookLevel, ...]:
    if not isinstance(levels, list):
        raise ParseError(f"{where}: {name!r} is a {type(levels).__name__}, expected an array")
    if all(type(level) is list and len(level) == 2 for level in levels) and all_decimal_text(
            [text for level in levels for text in level]):
        return tuple(BookLevel(price, size) for price, size in levels)
    out = []  # something is wrong: find the first bad level, to name it
    for level in levels:
        if not isinstance(level, list) or len(level) != 2:
            raise ParseError(f"{where}: level {level!r} in {name!r} is not [price, size]")
        out.append(BookLevel(_decimal(where, name, level[0]), _decimal(where, name, level[1])))
    return tuple(out)


@dataclass
class DepthSnapshotParser:
    """A REST depth reply as the ingest path's parser; the request URL names the symbol."""

    url: str
    venue: str = VENUE

    def encoded(self, frame_text: str | bytes, ts_recv_ns: int, books: NativeBooks) -> Encoded | BookStep | None:
        return None  # REST replies are rare: no compiled path

    def parse(self, frame_text: str | bytes, ts_recv_ns: int) -> Parsed:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)
        symbols = query.get("symbol")
        if not symbols:
            raise ParseError(f"depth snapshot: the request {self.url} names no symbol")
        return parse_depth_snapshot(frame_text, ts_recv_ns, symbols[0], self.venue)
