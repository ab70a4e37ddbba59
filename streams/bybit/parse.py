"""Pure functions from Bybit v5 public frames and REST replies to typed records; the one venue boundary."""

from __future__ import annotations

import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from liqbot_core import bybit_hot

from schemas.records import (
    AvroRecord,
    BookLevel,
    BookUpdate,
    FundingRate,
    Instrument,
    Liquidation,
    OpenInterest,
    PositionSide,
    Side,
    Ticker,
    Trade,
)
from streams.venue import (
    BookStep,
    Encoded,
    NativeBooks,
    Parsed,
    ParseError,
    decimal_text,
    json_object,
    ms_to_ns,
    reading,
    text_field,
)

__all__ = ["BybitPublicParser", "parse_instruments", "parse_rest"]

_TAKER_SIDE: dict[str, Side] = {"Buy": "BUY", "Sell": "SELL"}
# Bybit reports the side of the liquidated position: Buy = a long was liquidated.
_POSITION_SIDE: dict[str, PositionSide] = {"Buy": "LONG", "Sell": "SHORT"}
_TICKER_FIELDS = {
    "lastPrice": "last_price", "markPrice": "mark_price", "indexPrice": "index_price",
    "fundingRate": "funding_rate", "openInterest": "open_interest", "openInterestValue": "open_interest_value",
    "bid1Price": "bid1_price", "ask1Price": "ask1_price", "volume24h": "volume_24h", "turnover24h": "turnover_24h",
}


@dataclass
class BybitPublicParser:
    """Parses public WebSocket frames of one connection; keeps only the per-symbol ticker state deltas need."""

    venue: str = "bybit-linear"
    _tickers: dict[str, Ticker] = field(default_factory=dict)

    def encoded(self, frame_text: str | bytes, ts_recv_ns: int, books: NativeBooks) -> Encoded | BookStep | None:
        """Order-book frames through the compiled path (equal to `parse` + book); `parse` takes the others."""
        return bybit_hot(frame_text, ts_recv_ns, self.venue, books)

    def parse(self, frame_text: str | bytes, ts_recv_ns: int) -> Parsed:
        frame = json_object(frame_text)
        topic = frame.get("topic")
        if topic is None:
            if "op" in frame or "success" in frame:
                return Parsed("control")
            raise ParseError("frame has neither 'topic' nor 'op'")
        channel = str(topic).split(".", 1)[0]
        handler = _HANDLERS.get(channel)
        if handler is None:
            raise ParseError(f"topic {topic}: unknown channel {channel!r}")
        with reading(f"topic {topic}"):
            return handler(self, str(topic), frame, ts_recv_ns)

    def _trades(self, topic: str, frame: dict[str, Any], ts_recv_ns: int) -> Parsed:
        ts_exchange_ns = ms_to_ns(frame["ts"])
        records = tuple(
            Trade(
                venue=self.venue, symbol=text_field(topic, "s", t["s"]), event_id=text_field(topic, "i", t["i"]),
                ts_event_ns=ms_to_ns(t["T"]), ts_exchange_ns=ts_exchange_ns, ts_recv_ns=ts_recv_ns,
                taker_side=_side(topic, t["S"], _TAKER_SIDE),
                price=decimal_text(topic, "p", t["p"]), size=decimal_text(topic, "v", t["v"]),
                tick_direction=t.get("L"), block_trade=bool(t.get("BT", False)), rpi=t.get("RPI"), seq=t.get("seq"),
            )
            for t in _items(topic, frame)
        )
        return Parsed("trade", records, topic)

    def _all_liquidation(self, topic: str, frame: dict[str, Any], ts_recv_ns: int) -> Parsed:
        ts_exchange_ns = ms_to_ns(frame["ts"])
        seen: Counter[tuple[str, ...]] = Counter()
        records = []
        for item in _items(topic, frame):
            identity = (text_field(topic, "s", item["s"]), str(int(item["T"])), str(item["S"]), str(item["p"]),
                        str(item["v"]))
            seen[identity] += 1  # identical entries inside one frame stay distinct events
            records.append(Liquidation(
                venue=self.venue, symbol=identity[0], event_id=":".join((*identity, str(seen[identity]))),
                ts_event_ns=ms_to_ns(item["T"]), ts_exchange_ns=ts_exchange_ns, ts_recv_ns=ts_recv_ns,
                position_side=_side(topic, item["S"], _POSITION_SIDE),
                bankruptcy_price=decimal_text(topic, "p", item["p"]), size=decimal_text(topic, "v", item["v"]),
                feed="allLiquidation",
            ))
        return Parsed("liquidation", tuple(records), topic)

    def _legacy_liquidation(self, topic: str, frame: dict[str, Any], ts_recv_ns: int) -> Parsed:
        """`liquidation.{symbol}`, deprecated by Bybit on 2025-02-20: one object, long field names."""
        item = frame["data"]
        identity = (text_field(topic, "symbol", item["symbol"]), str(int(item["updatedTime"])), str(item["side"]),
                    str(item["price"]), str(item["size"]))
        record = Liquidation(
            venue=self.venue, symbol=identity[0], event_id=":".join((*identity, "1")),
            ts_event_ns=ms_to_ns(item["updatedTime"]), ts_exchange_ns=ms_to_ns(frame["ts"]), ts_recv_ns=ts_recv_ns,
            position_side=_side(topic, item["side"], _POSITION_SIDE),
            bankruptcy_price=decimal_text(topic, "price", item["price"]),
            size=decimal_text(topic, "size", item["size"]),
            feed="liquidation",
        )
        return Parsed("liquidation", (record,), topic)

    def _book(self, topic: str, frame: dict[str, Any], ts_recv_ns: int) -> Parsed:
        _, depth, symbol = topic.split(".")
        data = frame["data"]
        kind = frame["type"]
        if kind not in ("snapshot", "delta"):
            raise ParseError(f"topic {topic}: type {kind!r} is neither snapshot nor delta")
        ts_exchange_ns = ms_to_ns(frame["ts"])
        record = BookUpdate(
            venue=self.venue, symbol=text_field(topic, "s", data["s"]), event_id=f"{symbol}:{depth}:{int(data['u'])}",
            ts_event_ns=ms_to_ns(frame["cts"]) if "cts" in frame else ts_exchange_ns,
            ts_exchange_ns=ts_exchange_ns, ts_recv_ns=ts_recv_ns,
            update_type="SNAPSHOT" if kind == "snapshot" else "DELTA", depth=int(depth),
            update_id=int(data["u"]), seq=data.get("seq"),
            bids=_levels(topic, "b", data["b"]), asks=_levels(topic, "a", data["a"]),
        )
        return Parsed("book", (record,), topic)

    def _ticker(self, topic: str, frame: dict[str, Any], ts_recv_ns: int) -> Parsed:
        data = frame["data"]
        symbol = text_field(topic, "symbol", data["symbol"])
        ts_exchange_ns = ms_to_ns(frame["ts"])
        seq = frame.get("cs")
        changes: dict[str, Any] = {
            ours: decimal_text(topic, theirs, data[theirs]) for theirs, ours in _TICKER_FIELDS.items() if theirs in data
        }
        if "nextFundingTime" in data:
            changes["next_funding_time_ns"] = ms_to_ns(data["nextFundingTime"])
        if data.get("fundingIntervalHour"):
            changes["funding_interval_hours"] = int(data["fundingIntervalHour"])
        previous = self._tickers.get(symbol) if frame.get("type") == "delta" else None
        base = previous or Ticker(venue=self.venue, symbol=symbol, event_id="", ts_event_ns=0,
                                  ts_exchange_ns=0, ts_recv_ns=0)
        ticker = replace(
            base, event_id=f"{symbol}:{frame['ts']}:{seq}", ts_event_ns=ts_exchange_ns,
            ts_exchange_ns=ts_exchange_ns, ts_recv_ns=ts_recv_ns, seq=seq, **changes,
        )
        self._tickers[symbol] = ticker
        return Parsed("ticker", (ticker,), topic)


def _kline(parser: BybitPublicParser, topic: str, frame: dict[str, Any], ts_recv_ns: int) -> Parsed:
    return Parsed("ignored", topic=topic)  # candles are derivable from trades; counted, not stored


_HANDLERS: dict[str, Callable[[BybitPublicParser, str, dict[str, Any], int], Parsed]] = {
    "publicTrade": BybitPublicParser._trades,
    "allLiquidation": BybitPublicParser._all_liquidation,
    "liquidation": BybitPublicParser._legacy_liquidation,
    "orderbook": BybitPublicParser._book,
    "tickers": BybitPublicParser._ticker,
    "kline": _kline,
}


def parse_instruments(reply_text: str | bytes, ts_recv_ns: int, venue: str) -> Parsed:
    """A `/v5/market/instruments-info` reply to one `Instrument` per listed symbol."""
    reply = json_object(reply_text, "instruments-info reply")
    if reply.get("retCode") != 0:
        raise ParseError(f"instruments-info: retCode {reply.get('retCode')}: {reply.get('retMsg')}")
    with reading("instruments-info", "reply"):
        reply_ms = int(reply["time"])
        items = reply["result"]["list"]
        return Parsed("instrument", tuple(_instrument(i, reply_ms, ts_recv_ns, venue) for i in items),
                      "instruments-info")


def _instrument(item: dict[str, Any], reply_ms: int, ts_recv_ns: int, venue: str) -> Instrument:
    lot = item["lotSizeFilter"]
    ts_ns = ms_to_ns(reply_ms)
    # Linear contracts step in qtyStep; spot steps in basePrecision and has minOrderAmt for notional.
    return Instrument(
        venue=venue, symbol=item["symbol"], event_id=f"{item['symbol']}:{reply_ms}",
        ts_event_ns=ts_ns, ts_exchange_ns=ts_ns, ts_recv_ns=ts_recv_ns, status=item["status"],
        contract_type=item.get("contractType"), base_coin=item["baseCoin"], quote_coin=item["quoteCoin"],
        tick_size=item["priceFilter"]["tickSize"], qty_step=lot.get("qtyStep") or lot["basePrecision"],
        min_order_qty=lot["minOrderQty"], max_order_qty=lot["maxOrderQty"],
        min_notional=lot.get("minNotionalValue") or lot.get("minOrderAmt"),
        max_leverage=(item.get("leverageFilter") or {}).get("maxLeverage"),
        funding_interval_minutes=item.get("fundingInterval"),
    )


def _items(topic: str, frame: dict[str, Any]) -> list[dict[str, Any]]:
    data = frame["data"]
    if not isinstance(data, list):
        raise ParseError(f"topic {topic}: 'data' is a {type(data).__name__}, expected an array")
    return data


def _side(topic: str, value: Any, mapping: dict[str, Any]) -> Any:
    if value not in mapping:
        raise ParseError(f"topic {topic}: side {value!r} is neither Buy nor Sell")
    return mapping[value]


def _levels(topic: str, name: str, levels: list[list[str]]) -> tuple[BookLevel, ...]:
    out = []
    for level in levels:
        if len(level) != 2:
            raise ParseError(f"topic {topic}: level in {name!r} has {len(level)} entries, expected [price, size]")
        out.append(BookLevel(decimal_text(topic, name, level[0]), decimal_text(topic, name, level[1])))
    return tuple(out)


def parse_rest(url: str, reply_text: str | bytes, ts_recv_ns: int, venue: str) -> Parsed:
    """A public REST reply to records, by its endpoint: instruments, open interest or funding history."""
    path, _, query = url.partition("?")
    if path.endswith("/v5/market/instruments-info"):
        return parse_instruments(reply_text, ts_recv_ns, venue)
    if path.endswith("/v5/market/open-interest"):
        interval = urllib.parse.parse_qs(query).get("intervalTime", ["?"])[0]
        return _rest_list(reply_text, "open-interest", lambda item, ms, symbol: OpenInterest(
            venue=venue, symbol=symbol, event_id=f"{symbol}:{interval}:{int(item['timestamp'])}",
            ts_event_ns=ms_to_ns(item["timestamp"]), ts_exchange_ns=ms_to_ns(ms), ts_recv_ns=ts_recv_ns,
            interval=interval, open_interest=decimal_text("open-interest", "openInterest", item["openInterest"]),
        ))
    if path.endswith("/v5/market/funding/history"):
        return _rest_list(reply_text, "funding-history", lambda item, ms, _: FundingRate(
            venue=venue, symbol=text_field("funding-history", "symbol", item["symbol"]),
            event_id=f"{item['symbol']}:{int(item['fundingRateTimestamp'])}",
            ts_event_ns=ms_to_ns(item["fundingRateTimestamp"]), ts_exchange_ns=ms_to_ns(ms), ts_recv_ns=ts_recv_ns,
            funding_rate=decimal_text("funding-history", "fundingRate", item["fundingRate"]),
        ))
    raise ParseError(f"no parser for the REST endpoint {path}")


def _rest_list(reply_text: str | bytes, kind: str,
               make: Callable[[dict[str, Any], int, str], AvroRecord]) -> Parsed:
    reply = json_object(reply_text, f"{kind} reply")
    if reply.get("retCode") != 0:
        raise ParseError(f"{kind}: retCode {reply.get('retCode')}: {reply.get('retMsg')}")
    with reading(kind, "reply"):
        result = reply["result"]
        symbol = str(result.get("symbol", ""))
        return Parsed(kind, tuple(make(item, int(reply["time"]), symbol) for item in result["list"]), kind)
