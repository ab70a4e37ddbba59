"""The live adapter's pure part: tick and lot rounding from real instrument records, Bybit's reply envelope, and
private-stream messages to OrderEvents. Messages are in the shapes of Bybit's documentation (v5/websocket/private/
order and execution); no private capture exists."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.records import Instrument, OrderIntent, Side
from streams.bybit.parse import parse_instruments
from streams.bybit.private_parse import (
    OrderRefusedError,
    accepted_event,
    order_params,
    parse_envelope,
    parse_private,
    round_price,
    round_size,
)
from streams.capture import read_capture
from streams.venue import ParseError


@pytest.fixture(scope="module")
def instruments(bybit_capture: Path) -> dict[str, Instrument]:
    """The real instruments-info reply of the capture (BTCUSDT tick 0.10, lot 0.001; 1000PEPEUSDT lot 100; ...)."""
    reply = next(f.data for f in read_capture(bybit_capture) if f.kind == "http" and f.venue == "bybit-linear")
    return {r.symbol: r for r in parse_instruments(reply, 0, "bybit-linear").records if isinstance(r, Instrument)}


def intent(price: str, size: str, *, side: Side = "BUY", symbol: str = "BTCUSDT", coid: str = "w-1",
           post_only: bool = True) -> OrderIntent:
    return OrderIntent(venue="bybit-linear", symbol=symbol, client_order_id=coid, ts_event_ns=1, ts_recv_ns=1,
                       mode="LIVE", side=side, price=price, size=size, post_only=post_only, reduce_only=False,
                       valid_for_ms=10_000, hold_ms=60_000, take_profit_price=None, stop_loss_price=None,
                       delta_bps=10.0, expected_net_return=0.0004, fill_probability=0.3, model_version="m1",
                       prediction_id="p1")


@pytest.mark.parametrize(("symbol", "side", "given", "sent"), [
    ("BTCUSDT", "BUY", ("65000.15", "0.0019"), ("65000.10", "0.001")),  # buy price down, size down to the lot
    ("BTCUSDT", "SELL", ("65000.11", "0.0019"), ("65000.20", "0.001")),  # sell price up
    ("BTCUSDT", "BUY", ("65000.1", "0.002"), ("65000.10", "0.002")),  # on the grid already: unchanged value
    ("SOLUSDT", "SELL", ("151.2345", "3.99"), ("151.240", "3.9")),  # tick 0.010, lot 0.1
    ("1000PEPEUSDT", "BUY", ("0.01234567", "25050"), ("0.0123450", "25000")),  # tick 0.0000010, lot 100
    ("DOGEUSDT", "SELL", ("0.150001", "40.9"), ("0.15001", "40")),  # tick 0.00001, lot 1
])
def test_prices_and_sizes_are_rounded_to_the_instrument(instruments: dict[str, Instrument], symbol: str, side: Side,
                                                       given: tuple[str, str], sent: tuple[str, str]) -> None:
    params = order_params(intent(*given, side=side, symbol=symbol), instruments[symbol])
    sent_price, sent_qty = sent
    assert (params.price, params.qty) == (sent_price, sent_qty)
    assert params.body("linear") == {
        "category": "linear", "symbol": symbol, "side": "Buy" if side == "BUY" else "Sell", "orderType": "Limit",
        "qty": sent_qty, "price": sent_price, "timeInForce": "PostOnly", "orderLinkId": "w-1", "reduceOnly": False,
        "positionIdx": 0}


def test_rounding_never_crosses_toward_the_market() -> None:
    tick = Decimal("0.5")
    assert [round_price(Decimal(p), tick, "BUY") for p in ("10.49", "10.5", "10.99")] == [10, Decimal("10.5"), 10.5]
    assert [round_price(Decimal(p), tick, "SELL") for p in ("10.01", "10.5", "10.51")] == [10.5, 10.5, 11]
    assert round_size(Decimal("0.0099"), Decimal("0.001")) == Decimal("0.009")


def test_not_post_only_is_gtc(instruments: dict[str, Instrument]) -> None:
    assert order_params(intent("65000", "0.001", post_only=False), instruments["BTCUSDT"]).time_in_force == "GTC"


@pytest.mark.parametrize(("order", "message"), [
    (intent("65000", "0.0009"), "size 0.0009 rounds down to 0.000, below the minimum order qty 0.001"),
    (intent("65000", "1500.001"), "size 1500.001 above the maximum order qty 1500.000"),
    (intent("4000", "0.001"), "notional 4 below the minimum 5"),
    (intent("0.04", "0.001"), "price 0.04 rounds to 0.00, not positive"),
    (intent("abc", "0.001"), "price 'abc' is not a decimal number"),
    (intent("65000", "NaN"), "size 'NaN' is not a finite number"),
    (intent("65000", "0.001", coid="5bps/10000ms"), "client_order_id must be 1-36 letters, digits, '-' or '_'"),
    (intent("65000", "0.001", coid="x" * 37), "client_order_id must be 1-36 letters"),
    (intent("65000", "0.001", symbol="ETHUSDT"), "the instrument is bybit-linear BTCUSDT, not bybit-linear"),
])
def test_orders_bybit_would_refuse_are_refused_before_sending(instruments: dict[str, Instrument],
                                                              order: OrderIntent, message: str) -> None:
    with pytest.raises(OrderRefusedError) as info:
        order_params(order, instruments["BTCUSDT"])
    assert message in str(info.value)


def _order(status: str = "New", **fields: Any) -> dict[str, Any]:
    item = {"category": "linear", "symbol": "BTCUSDT", "orderId": "5cf98598-39a7-459e-97bf-76ca765ee020",
            "orderLinkId": "w-1", "side": "Buy", "orderType": "Limit", "cancelType": "UNKNOWN", "price": "65000.10",
            "qty": "0.010", "timeInForce": "PostOnly", "orderStatus": status, "reduceOnly": False,
            "leavesQty": "0.010", "cumExecQty": "0", "cumExecValue": "0", "avgPrice": "", "cumExecFee": "0",
            "positionIdx": 0, "createdTime": "1786310817100", "updatedTime": "1786310817197",
            "rejectReason": "EC_NoError"}
    return {**item, **fields}


def _execution(**fields: Any) -> dict[str, Any]:
    item = {"category": "linear", "symbol": "BTCUSDT", "closedSize": "0", "execFee": "0.0520008",
            "execId": "282e2f12-770a-5b69-9c03-f9fbdc640f01", "execPrice": "65000.10", "execQty": "0.004",
            "execType": "Trade", "execValue": "260.0004", "feeRate": "0.0002", "leavesQty": "0.006",
            "orderId": "5cf98598-39a7-459e-97bf-76ca765ee020", "orderLinkId": "w-1", "orderPrice": "65000.10",
            "orderQty": "0.010", "orderType": "Limit", "stopOrderType": "UNKNOWN", "side": "Buy",
            "execTime": "1786310818000", "isLeverage": "0", "isMaker": True, "seq": 4688002127}
    return {**item, **fields}


def _message(topic: str, *items: dict[str, Any]) -> str:
    return json.dumps({"id": "5923240c6880ab-c59f-420b-9adb-3639adc9dd90", "topic": topic,
                       "creationTime": 1786310818001, "data": list(items)})


def test_new_order_is_accepted_with_the_same_identity_as_the_rest_acknowledgement(
        instruments: dict[str, Instrument]) -> None:
    (event,) = parse_private(_message("order.linear", _order("New")), "bybit-linear", "linear", 7).events
    assert (event.status, event.event_id, event.client_order_id, event.venue_order_id) == (
        "ACCEPTED", "w-1:ACCEPTED:0", "w-1", "5cf98598-39a7-459e-97bf-76ca765ee020")
    assert (event.side, event.price, event.size, event.filled_size, event.reason) == (
        "BUY", "65000.10", "0.010", "0", None)
    assert (event.ts_event_ns, event.ts_recv_ns) == (1786310817197 * 1_000_000, 7)
    params = order_params(intent("65000.10", "0.010"), instruments["BTCUSDT"])
    assert accepted_event(params, "bybit-linear", "x", ts_event_ns=1, ts_recv_ns=2).event_id == event.event_id


@pytest.mark.parametrize(("fields", "status", "reason", "event_id"), [
    ({"orderStatus": "Cancelled", "rejectReason": "EC_PostOnlyWillTakeLiquidity", "leavesQty": "0"},
     "CANCELLED", "EC_PostOnlyWillTakeLiquidity", "w-1:CANCELLED:0"),
    ({"orderStatus": "Cancelled", "cancelType": "CancelByUser", "cumExecQty": "0.004"},
     "CANCELLED", "CancelByUser", "w-1:CANCELLED:0.004"),
    ({"orderStatus": "Rejected", "rejectReason": "EC_InvalidSymbolStatus"},
     "REJECTED", "EC_InvalidSymbolStatus", "w-1:REJECTED:0"),
])
def test_cancels_and_rejections_carry_bybits_reason(fields: dict[str, Any], status: str, reason: str,
                                                    event_id: str) -> None:
    (event,) = parse_private(_message("order.linear", _order(**fields)), "bybit-linear", "linear", 7).events
    assert (event.status, event.reason, event.event_id) == (status, reason, event_id)


def test_fills_come_from_executions_once_each() -> None:
    message = parse_private(_message("order.linear", _order("PartiallyFilled", cumExecQty="0.004"),
                                     _order("Filled", cumExecQty="0.010")), "bybit-linear", "linear", 7)
    assert (message.events, message.skipped) == ((), 2)  # the fills themselves come on `execution`
    partial, taker = parse_private(_message("execution.linear", _execution(),
                                            _execution(execId="e-2", execQty="0.006", leavesQty="0", isMaker=False,
                                                       execFee="0.2145003")),
                                   "bybit-linear", "linear", 9).events
    assert (partial.status, partial.event_id, partial.filled_size, partial.last_fill_price, partial.last_fill_size,
            partial.fee, partial.liquidity) == (
        "PARTIALLY_FILLED", "282e2f12-770a-5b69-9c03-f9fbdc640f01", "0.004", "65000.10", "0.004", "0.0520008",
        "MAKER")
    assert (taker.status, taker.filled_size, taker.last_fill_size, taker.liquidity, taker.ts_event_ns) == (
        "FILLED", "0.010", "0.006", "TAKER", 1786310818000 * 1_000_000)


def test_what_is_not_ours_is_skipped() -> None:
    message = parse_private(_message("order", _order("New", category="spot"), _order("New", orderLinkId=""),
                                     _order("Untriggered")), "bybit-linear", "linear", 7)
    assert (message.events, message.skipped) == ((), 3)
    funding = parse_private(_message("execution", _execution(execType="Funding")), "bybit-linear", "linear", 7)
    assert (funding.events, funding.skipped) == ((), 1)


def test_replies_to_ops() -> None:
    ok = parse_private('{"success":true,"ret_msg":"","op":"auth","conn_id":"cejreaspqfh3sjdnldmg-p"}', "v", "l", 0)
    refused = parse_private('{"success":false,"ret_msg":"denied","op":"subscribe","conn_id":"c"}', "v", "l", 0)
    pong = parse_private('{"req_id":"3","op":"pong","args":["1703683273204"],"conn_id":"c"}', "v", "l", 0)
    assert [(m.kind, m.op, m.success, m.ret_msg) for m in (ok, refused, pong)] == [
        ("reply", "auth", True, ""), ("reply", "subscribe", False, "denied"), ("reply", "pong", True, "")]


@pytest.mark.parametrize(("text", "message"), [
    (_message("order.linear", {k: v for k, v in _order("New").items() if k != "cumExecQty"}),
     "topic order.linear: missing field 'cumExecQty'"),
    (_message("order.linear", _order("Sleeping")), "topic order.linear: unknown orderStatus 'Sleeping'"),
    (_message("order.linear", _order("New", price=65000.1)), "field 'price' = 65000.1 is not a decimal string"),
    (_message("execution.linear", _execution(side="Long")), "side 'Long' is neither Buy nor Sell"),
    ('{"topic":"order","data":{}}', "topic order: 'data' is a dict, expected an array"),
    ('{"topic":"wallet","data":[]}', "topic wallet: not a subscribed channel"),
    ('{"hello":1}', "private message has neither 'topic' nor 'op'"),
    ("[1]", "private message is a JSON list, expected an object"),
])
def test_malformed_messages_raise_naming_topic_and_field(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_private(text, "bybit-linear", "linear", 0)
    assert message in str(info.value)


def test_envelope() -> None:
    ok = parse_envelope('{"retCode":0,"retMsg":"OK","result":{"orderId":"1","orderLinkId":"w-1"},'
                        '"retExtInfo":{},"time":1744075839332}', "/v5/order/create")
    assert (ok.ret_code, ok.ret_msg, ok.result, ok.time_ms) == (0, "OK", {"orderId": "1", "orderLinkId": "w-1"},
                                                                1744075839332)
    refused = parse_envelope('{"retCode":110007,"retMsg":"Available balance is insufficient","result":null,'
                             '"time":1}', "/v5/order/create")
    assert (refused.ret_code, refused.result) == (110007, {})
    with pytest.raises(ParseError, match=r"^/v5/order/create: missing field 'time'$"):
        parse_envelope('{"retCode":0,"retMsg":"OK","result":{}}', "/v5/order/create")
    with pytest.raises(ParseError, match=r"^/v5/order/create reply is not JSON"):
        parse_envelope("<html>502</html>", "/v5/order/create")
