"""Pure functions of the live adapter: an intent to Bybit order parameters (tick and lot rounding), Bybit's reply
envelope, and private-stream `order` / `execution` messages to `OrderEvent` records. No I/O.

Order-state events are identified by client order id, status and cumulative filled size, so the ACCEPTED made
from a REST acknowledgement and the one from the stream's `New` are the same event (re-delivery is harmless);
fills are identified by Bybit's execution id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Literal

from liqbot.errors import LiqbotError
from schemas.records import Instrument, OrderEvent, OrderIntent, OrderStatus, Side
from streams.venue import ParseError, decimal_text, json_object, ms_to_ns, reading, text_field

__all__ = [
    "Envelope", "OrderParams", "OrderRefusedError", "PrivateMessage", "accepted_event", "execution_event",
    "order_event", "order_params", "parse_envelope", "parse_private", "rejected_event", "round_price", "round_size",
    "state_event_id",
]

# Bybit: orderLinkId is at most 36 characters of numbers, letters, dashes and underscores.
_ORDER_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_BYBIT_SIDE: dict[Side, Literal["Buy", "Sell"]] = {"BUY": "Buy", "SELL": "Sell"}
_SIDE: dict[str, Side] = {"Buy": "BUY", "Sell": "SELL"}
# None: a conditional order's state, which this adapter never places.
_ORDER_STATUS: dict[str, OrderStatus | None] = {
    "New": "ACCEPTED", "PartiallyFilled": "PARTIALLY_FILLED", "Filled": "FILLED", "Cancelled": "CANCELLED",
    "PartiallyFilledCanceled": "CANCELLED", "Deactivated": "CANCELLED", "Rejected": "REJECTED",
    "Untriggered": None, "Triggered": None,
}
_FILL_STATUSES = {"PARTIALLY_FILLED", "FILLED"}
_NO_REASON = {"", "UNKNOWN", "EC_NoError"}


class OrderRefusedError(LiqbotError):
    """An intent that cannot become a valid Bybit order; nothing was sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderParams:
    """A limit order as Bybit takes it: price on the tick grid, size on the lot grid, both as decimal text."""

    symbol: str
    side: Literal["Buy", "Sell"]
    qty: str
    price: str
    time_in_force: Literal["PostOnly", "GTC"]
    reduce_only: bool
    order_link_id: str

    def body(self, category: str) -> dict[str, Any]:
        """The `/v5/order/create` body; positionIdx 0 is one-way mode (a hedge-mode account is refused)."""
        return {"category": category, "symbol": self.symbol, "side": self.side, "orderType": "Limit",
                "qty": self.qty, "price": self.price, "timeInForce": self.time_in_force,
                "orderLinkId": self.order_link_id, "reduceOnly": self.reduce_only, "positionIdx": 0}


def _decimal(what: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise OrderRefusedError(f"{what} {text!r} is not a decimal number") from exc
    if not value.is_finite():
        raise OrderRefusedError(f"{what} {text!r} is not a finite number")
    return value


def _on_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        raise OrderRefusedError(f"step {step} is not positive")
    return ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)


def round_price(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """Onto the tick grid away from the market: a buy rounds down, a sell up, so it never pays more than asked."""
    return _on_grid(price, tick, ROUND_FLOOR if side == "BUY" else ROUND_CEILING)


def round_size(size: Decimal, step: Decimal) -> Decimal:
    """Down onto the lot grid: never more than the intent's size."""
    return _on_grid(size, step, ROUND_FLOOR)


def order_params(intent: OrderIntent, instrument: Instrument) -> OrderParams:
    """The rounded order for `intent`; OrderRefusedError where Bybit would refuse it (nothing is sent then)."""
    where = f"{intent.symbol} {intent.client_order_id}"
    _check_target(intent, instrument, where)
    price = round_price(_decimal("price", intent.price), _decimal("tick size", instrument.tick_size), intent.side)
    size = round_size(_decimal("size", intent.size), _decimal("qty step", instrument.qty_step))
    _check_limits(intent, instrument, where, price, size)
    return OrderParams(symbol=intent.symbol, side=_BYBIT_SIDE[intent.side], qty=format(size, "f"),
                       price=format(price, "f"), time_in_force="PostOnly" if intent.post_only else "GTC",
                       reduce_only=intent.reduce_only, order_link_id=intent.client_order_id)


def _check_target(intent: OrderIntent, instrument: Instrument, where: str) -> None:
    if not _ORDER_LINK_ID.fullmatch(intent.client_order_id):
        raise OrderRefusedError(f"{where}: client_order_id must be 1-36 letters, digits, '-' or '_' "
                                "(Bybit orderLinkId)")
    if (intent.venue, intent.symbol) != (instrument.venue, instrument.symbol):
        raise OrderRefusedError(f"{where}: the instrument is {instrument.venue} {instrument.symbol}, "
                                f"not {intent.venue}")
    if instrument.status != "Trading":
        raise OrderRefusedError(f"{where}: instrument status is {instrument.status}, not Trading")


def _check_limits(intent: OrderIntent, instrument: Instrument, where: str, price: Decimal, size: Decimal) -> None:
    if price <= 0:
        raise OrderRefusedError(f"{where}: price {intent.price} rounds to {price}, not positive")
    if size < _decimal("min order qty", instrument.min_order_qty):
        raise OrderRefusedError(f"{where}: size {intent.size} rounds down to {size}, below the minimum order qty "
                                f"{instrument.min_order_qty}")
    if size > _decimal("max order qty", instrument.max_order_qty):
        raise OrderRefusedError(f"{where}: size {size} above the maximum order qty {instrument.max_order_qty}")
    if instrument.min_notional is not None and price * size < _decimal("min notional", instrument.min_notional):
        notional = format((price * size).normalize(), "f")
        raise OrderRefusedError(f"{where}: notional {notional} below the minimum {instrument.min_notional}")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Bybit's reply wrapper: retCode 0 is success; `time` is the venue's clock in ms."""

    ret_code: int
    ret_msg: str
    result: dict[str, Any]
    time_ms: int


def parse_envelope(text: str, where: str) -> Envelope:
    reply = json_object(text, f"{where} reply")
    with reading(where, "reply"):
        result = reply.get("result") or {}
        if not isinstance(result, dict):
            raise ParseError(f"{where}: 'result' is a {type(result).__name__}, expected an object")
        return Envelope(int(reply["retCode"]), str(reply.get("retMsg", "")), result, int(reply["time"]))


def _plain(value: str) -> str:
    return format(Decimal(value).normalize(), "f")


def state_event_id(client_order_id: str, status: OrderStatus, filled_size: str) -> str:
    """One identity per state of an order, whichever path (REST or stream) reported it."""
    return f"{client_order_id}:{status}:{_plain(filled_size)}"


def accepted_event(params: OrderParams, venue: str, venue_order_id: str | None, *, ts_event_ns: int,
                   ts_recv_ns: int, reason: str | None = None) -> OrderEvent:
    """The venue took the order (REST acknowledgement); price and size are the rounded ones sent."""
    return OrderEvent(
        venue=venue, symbol=params.symbol, event_id=state_event_id(params.order_link_id, "ACCEPTED", "0"),
        client_order_id=params.order_link_id, venue_order_id=venue_order_id, ts_event_ns=ts_event_ns,
        ts_recv_ns=ts_recv_ns, status="ACCEPTED", side=_SIDE[params.side], price=params.price, size=params.qty,
        filled_size="0", reason=reason,
    )


def rejected_event(intent: OrderIntent, reason: str, ts_event_ns: int, ts_recv_ns: int,
                   params: OrderParams | None = None) -> OrderEvent:
    """Refused before sending (no params) or by the venue (the rounded params it was sent)."""
    return OrderEvent(
        venue=intent.venue, symbol=intent.symbol, event_id=state_event_id(intent.client_order_id, "REJECTED", "0"),
        client_order_id=intent.client_order_id, venue_order_id=None, ts_event_ns=ts_event_ns,
        ts_recv_ns=ts_recv_ns, status="REJECTED", side=intent.side, price=params.price if params else intent.price,
        size=params.qty if params else intent.size, filled_size="0", reason=reason,
    )


def _reason(item: dict[str, Any]) -> str | None:
    parts = [str(item.get(k, "")) for k in ("cancelType", "rejectReason")]
    kept = [p for p in parts if p not in _NO_REASON]
    return "/".join(kept) or None


def order_event(item: dict[str, Any], venue: str, ts_recv_ns: int, where: str = "order") -> OrderEvent | None:
    """An order record (stream `order` item or `/v5/order/realtime` entry) to its state event; None: not ours."""
    with reading(where):
        status_text = item["orderStatus"]
        if status_text not in _ORDER_STATUS:
            raise ParseError(f"{where}: unknown orderStatus {status_text!r}")
        status = _ORDER_STATUS[status_text]
        link_id = item.get("orderLinkId") or ""
        if status is None or not link_id:
            return None  # conditional orders, or orders placed elsewhere (web, app) that carry no orderLinkId
        filled = decimal_text(where, "cumExecQty", item["cumExecQty"])
        return OrderEvent(
            venue=venue, symbol=text_field(where, "symbol", item["symbol"]),
            event_id=state_event_id(link_id, status, filled), client_order_id=link_id,
            venue_order_id=text_field(where, "orderId", item["orderId"]),
            ts_event_ns=ms_to_ns(item["updatedTime"]), ts_recv_ns=ts_recv_ns, status=status,
            side=_side(where, item["side"]), price=decimal_text(where, "price", item["price"]),
            size=decimal_text(where, "qty", item["qty"]), filled_size=filled,
            reason=_reason(item) if status in ("CANCELLED", "REJECTED") else None,
        )


def execution_event(item: dict[str, Any], venue: str, ts_recv_ns: int, where: str = "execution") -> OrderEvent | None:
    """One fill of one of our orders, with its price, size, fee and liquidity; None for funding and the like."""
    with reading(where):
        link_id = item.get("orderLinkId") or ""
        if item["execType"] != "Trade" or not link_id:
            return None
        size = decimal_text(where, "orderQty", item["orderQty"])
        leaves = Decimal(decimal_text(where, "leavesQty", item["leavesQty"]))
        return OrderEvent(
            venue=venue, symbol=text_field(where, "symbol", item["symbol"]),
            event_id=text_field(where, "execId", item["execId"]), client_order_id=link_id,
            venue_order_id=text_field(where, "orderId", item["orderId"]),
            ts_event_ns=ms_to_ns(item["execTime"]), ts_recv_ns=ts_recv_ns,
            status="FILLED" if leaves == 0 else "PARTIALLY_FILLED", side=_side(where, item["side"]),
            price=decimal_text(where, "orderPrice", item["orderPrice"]), size=size,
            filled_size=format(Decimal(size) - leaves, "f"),
            last_fill_price=decimal_text(where, "execPrice", item["execPrice"]),
            last_fill_size=decimal_text(where, "execQty", item["execQty"]),
            fee=decimal_text(where, "execFee", item["execFee"]),
            liquidity="MAKER" if item["isMaker"] is True else "TAKER",
        )


def _side(where: str, value: Any) -> Side:
    if value not in _SIDE:
        raise ParseError(f"{where}: side {value!r} is neither Buy nor Sell")
    return _SIDE[value]


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """What one private-stream message was: a reply to an op, or data with the events it carried."""

    kind: Literal["reply", "order", "execution"]
    events: tuple[OrderEvent, ...] = ()
    op: str = ""
    success: bool = True
    ret_msg: str = ""
    skipped: int = 0  # items of another category, of orders not ours, fills seen on `order`, funding and the like


def parse_private(text: str, venue: str, category: str, ts_recv_ns: int) -> PrivateMessage:
    """A private-stream message; fills are taken from `execution` only (one event per fill, with its fee)."""
    message = json_object(text, "private message")
    if "topic" not in message:
        if "op" not in message:
            raise ParseError("private message has neither 'topic' nor 'op'")
        return PrivateMessage("reply", op=str(message["op"]), success=message.get("success") is not False,
                              ret_msg=str(message.get("ret_msg", "")))
    topic = str(message["topic"])
    channel = topic.split(".", 1)[0]
    if channel not in ("order", "execution"):
        raise ParseError(f"topic {topic}: not a subscribed channel")
    with reading(f"topic {topic}"):
        items = message["data"]
        if not isinstance(items, list):
            raise ParseError(f"topic {topic}: 'data' is a {type(items).__name__}, expected an array")
        ours = [i for i in items if i.get("category", category) == category]
        made = [(order_event if channel == "order" else execution_event)(i, venue, ts_recv_ns, f"topic {topic}")
                for i in ours]
    events = tuple(e for e in made if e is not None and not (channel == "order" and e.status in _FILL_STATUSES))
    return PrivateMessage("order" if channel == "order" else "execution", events, skipped=len(items) - len(events))
