"""A loopback stand-in for Bybit's private REST and WebSocket on 127.0.0.1 that checks requests as Bybit does.

The protocol peer of the live adapter's tests (Bybit cannot be reached from here). REST: it recomputes each
request's HMAC with the secret it was given (here, independently of signing.py, so a bug there cannot verify
itself), checks the timestamp against recv_window (server_time - recv_window <= timestamp < server_time + 1000),
and refuses with Bybit's retCodes and messages: 10002 (with req_timestamp/server_timestamp), 10003, 10004 (whose
origin_string echoes the key, as Bybit's does), 110072 for a repeated orderLinkId, 110001 for a cancel of an
order that is not open, 110094 below the minimum notional. It keeps orders, checks tick, lot and minimum
quantity (10001; that wording is the loopback's own), and cancels a post-only order that would cross the quote
set by `set_quote` with rejectReason EC_PostOnlyWillTakeLiquidity. WebSocket: auth (HMAC of "GET/realtime" +
expires, expires in the future), subscribe, ping/pong; `order` and `execution` messages in Bybit's shapes go to
authenticated subscribers. The stream's refusal texts are the loopback's own (Bybit does not document them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from schemas.records import Instrument
from streams.bybit.signing import Credentials

__all__ = ["LoopbackBybitPrivate", "PrivateFaults"]

_quiet = logging.getLogger(__name__)
_quiet.setLevel(logging.INFO)  # the peer's own frame log (it receives the key) is the venue's business, not ours

_OPEN = {"New", "PartiallyFilled"}
_FEE_RATE = {True: Decimal("0.0002"), False: Decimal("0.00055")}  # Bybit's non-VIP linear maker / taker
Answer = tuple[int, str, dict[str, Any], list[dict[str, Any]]]  # retCode, retMsg, result, order/execution pushes


@dataclass
class PrivateFaults:
    """Scripted answers to the next signed requests, before any check: HTTP statuses, then retCodes; and replies
    lost after the request was carried out (the client sees HTTP 504, the venue has done it)."""

    http_statuses: list[int] = field(default_factory=list)
    ret_codes: list[tuple[int, str]] = field(default_factory=list)
    lost_replies: int = 0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class LoopbackBybitPrivate:
    """Bybit's private REST (`rest_url`) and private stream (`ws_url`) for one account with `credentials`."""

    def __init__(self, credentials: Credentials, instruments: Iterable[Instrument], *,
                 clock_ms: Callable[[], int] = _wall_ms, faults: PrivateFaults | None = None) -> None:
        self._key, self._secret = credentials.api_key, credentials.api_secret
        self.instruments = {i.symbol: i for i in instruments}
        self.clock_ms = clock_ms
        self.faults = faults or PrivateFaults()
        self.orders: dict[str, dict[str, Any]] = {}  # by orderLinkId, as Bybit reports them
        self.quotes: dict[str, tuple[Decimal, Decimal]] = {}  # best bid, best ask
        self.answers: list[tuple[str, str, int]] = []  # (method, path, retCode) of every signed request
        self.replies: list[str] = []  # every REST body sent
        self.ws_connections = 0
        self.ws_auths = 0
        self.ws_ops: list[str] = []
        self._lock = threading.Lock()
        self._seq = count(1)
        self._subscribers: dict[ServerConnection, set[str]] = {}
        self._pushes: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def ws_url(self) -> str:
        port = next(iter(self._server.sockets)).getsockname()[1] if self._server else 0
        return f"ws://127.0.0.1:{port}/v5/private"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await serve(self._handle, "127.0.0.1", 0, logger=_quiet)
        self._pusher = asyncio.create_task(self._push_forever())
        self._thread.start()

    async def stop(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.to_thread(self._httpd.shutdown)
        self._httpd.server_close()

    def set_quote(self, symbol: str, bid: str, ask: str) -> None:
        """The market a post-only order is checked against (none set: every post-only order rests)."""
        self.quotes[symbol] = (Decimal(bid), Decimal(ask))

    async def fill(self, order_link_id: str, qty: str, price: str | None = None, *, is_maker: bool = True) -> str:
        """A fill of a resting order: an `execution` then an `order` message; returns the execution id."""
        with self._lock:
            order = self.orders[order_link_id]
            exec_qty, exec_price = Decimal(qty), Decimal(price or order["price"])
            if order["orderStatus"] not in _OPEN or exec_qty > Decimal(order["leavesQty"]):
                raise ValueError(f"{order_link_id} is {order['orderStatus']} with {order['leavesQty']} left")
            execution = self._execute(order, exec_qty, exec_price, is_maker)
        await self._pushes.put([execution, order])
        return str(execution["execId"])

    async def drop_connections(self) -> None:
        """Closes every private-stream connection, as a venue restart would."""
        for ws in list(self._subscribers):
            await ws.close()

    # --- REST ---------------------------------------------------------------------------------------------------

    def _http(self, method: str, target: str, headers: dict[str, str], body: str) -> tuple[int, str]:
        path, _, query = target.partition("?")
        if path == "/v5/market/time":
            now = self.clock_ms()
            return 200, self._envelope(0, "OK", {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})
        route = _ROUTES.get((method, path))
        if route is None:
            return 404, ""
        with self._lock:
            status, answer = self._answer(method, path, headers, query if method == "GET" else body, route)
            self.answers.append((method, path, answer[0]))
        code, message, result, pushes = answer
        if pushes and self._loop is not None:
            self._loop.call_soon_threadsafe(self._pushes.put_nowait, pushes)
        text = self._envelope(code, message, result) if status == 200 else ""
        self.replies.append(text)
        return status, text

    def _answer(self, method: str, path: str, headers: dict[str, str], payload: str,
                route: Callable[[LoopbackBybitPrivate, dict[str, Any]], Answer]) -> tuple[int, Answer]:
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        if not all(h in headers for h in ("x-bapi-api-key", "x-bapi-timestamp", "x-bapi-sign")):
            return 401, (-1, "", {}, [])  # Bybit: authentication params missing from the header
        refusal = self._check_signature(headers, payload)
        if refusal is not None:
            return 200, (*refusal, {}, [])
        params = dict(urllib.parse.parse_qsl(payload)) if method == "GET" else json.loads(payload)
        answer = route(self, params)
        if self.faults.lost_replies:
            self.faults.lost_replies -= 1
            return 504, answer
        return 200, answer

    def _scripted(self) -> tuple[int, Answer] | None:
        if self.faults.http_statuses:
            return self.faults.http_statuses.pop(0), (-1, "", {}, [])
        if self.faults.ret_codes:
            code, message = self.faults.ret_codes.pop(0)
            return 200, (code, message, {}, [])
        return None

    def _check_signature(self, headers: dict[str, str], payload: str) -> tuple[int, str] | None:
        # header names are case-insensitive (urllib sends X-bapi-api-key)
        key, stamp = headers["x-bapi-api-key"], headers["x-bapi-timestamp"]
        recv = headers.get("x-bapi-recv-window", "5000")
        if key != self._key:
            return 10003, "API key is invalid."
        now = self.clock_ms()
        if not now - int(recv) <= int(stamp) < now + 1000:
            return 10002, ("invalid request, please check your server timestamp or recv_window param. "
                           f"req_timestamp[{stamp}],server_timestamp[{now}],recv_window[{recv}]")
        origin = f"{stamp}{key}{recv}{payload}"
        expected = hmac.new(self._secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers["x-bapi-sign"]):
            return 10004, f"error sign! origin_string[{origin}]"
        return None

    def _envelope(self, code: int, message: str, result: dict[str, Any]) -> str:
        return json.dumps({"retCode": code, "retMsg": message, "result": result, "retExtInfo": {},
                           "time": self.clock_ms()})

    def _create(self, p: dict[str, Any]) -> Answer:
        invalid = self._invalid_order(p)
        if invalid is not None:
            return (*invalid, {}, [])
        now = str(self.clock_ms())
        order = {"category": "linear", "symbol": p["symbol"], "orderId": str(uuid.uuid4()),
                 "orderLinkId": p["orderLinkId"], "side": p["side"], "orderType": "Limit", "price": p["price"],
                 "qty": p["qty"], "timeInForce": p["timeInForce"], "orderStatus": "New", "cancelType": "UNKNOWN",
                 "rejectReason": "EC_NoError", "avgPrice": "", "leavesQty": p["qty"], "leavesValue": "",
                 "cumExecQty": "0", "cumExecValue": "0", "cumExecFee": "0", "reduceOnly": p.get("reduceOnly", False),
                 "positionIdx": p.get("positionIdx", 0), "createType": "CreateByUser", "createdTime": now,
                 "updatedTime": now}
        self.orders[p["orderLinkId"]] = order
        if p["timeInForce"] == "PostOnly" and self._would_take(p):
            order.update(orderStatus="Cancelled", rejectReason="EC_PostOnlyWillTakeLiquidity", leavesQty="0")
        return 0, "OK", {"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}, [dict(order)]

    def _invalid_order(self, p: dict[str, Any]) -> tuple[int, str] | None:
        instrument = self.instruments.get(p.get("symbol", ""))
        if p.get("category") != "linear" or instrument is None:
            return 10001, f"params error: unknown linear symbol {p.get('symbol')!r}"
        if p["orderLinkId"] in self.orders:
            return 110072, "OrderLinkedID is duplicate"
        if p.get("orderType") != "Limit" or p.get("side") not in ("Buy", "Sell"):
            return 10001, "params error: side or orderType"
        return self._off_grid(p, instrument)

    @staticmethod
    def _off_grid(p: dict[str, Any], instrument: Instrument) -> tuple[int, str] | None:
        price, qty = Decimal(p["price"]), Decimal(p["qty"])
        if price <= 0 or price % Decimal(instrument.tick_size):
            return 10001, f"params error: price {p['price']} is not a multiple of tickSize {instrument.tick_size}"
        if qty % Decimal(instrument.qty_step) or not (
                Decimal(instrument.min_order_qty) <= qty <= Decimal(instrument.max_order_qty)):
            return 10001, f"params error: qty {p['qty']} off the lot grid or outside the min/max order qty"
        if instrument.min_notional is not None and price * qty < Decimal(instrument.min_notional):
            return 110094, "Order notional value below the lower limit"
        return None

    def _would_take(self, p: dict[str, Any]) -> bool:
        if p["symbol"] not in self.quotes:
            return False
        bid, ask = self.quotes[p["symbol"]]
        return Decimal(p["price"]) >= ask if p["side"] == "Buy" else Decimal(p["price"]) <= bid

    def _cancel(self, p: dict[str, Any]) -> Answer:
        order = self.orders.get(p.get("orderLinkId", ""))
        if order is None or order["orderStatus"] not in _OPEN or order["symbol"] != p.get("symbol"):
            return 110001, "order not exists or too late to cancel", {}, []
        self._cancelled(order)
        return 0, "OK", {"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}, [dict(order)]

    def _cancel_all(self, p: dict[str, Any]) -> Answer:
        if not p.get("symbol") and not p.get("settleCoin"):
            return 10001, "params error: symbol, baseCoin or settleCoin is required", {}, []
        symbol, coin = p.get("symbol"), p.get("settleCoin")  # symbol first, as on Bybit
        hit = [o for o in self.orders.values() if o["orderStatus"] in _OPEN and (
            o["symbol"] == symbol if symbol else self.instruments[o["symbol"]].quote_coin == coin)]
        for order in hit:
            self._cancelled(order)
        done = [{"orderId": o["orderId"], "orderLinkId": o["orderLinkId"]} for o in hit]
        return 0, "OK", {"list": done, "success": "1"}, [dict(o) for o in hit]

    def _cancelled(self, order: dict[str, Any]) -> None:
        order.update(orderStatus="Cancelled", cancelType="CancelByUser", leavesQty="0",
                     updatedTime=str(self.clock_ms()))

    def _realtime(self, p: dict[str, Any]) -> Answer:
        wanted_open = p.get("openOnly", "0") == "0"
        found = [dict(o) for o in self.orders.values()
                 if (o["orderStatus"] in _OPEN) == wanted_open and o["symbol"] == p.get("symbol")
                 and p.get("orderLinkId") in (None, o["orderLinkId"])]
        return 0, "OK", {"list": found, "nextPageCursor": "", "category": "linear"}, []

    def _execute(self, order: dict[str, Any], qty: Decimal, price: Decimal, is_maker: bool) -> dict[str, Any]:
        leaves = Decimal(order["leavesQty"]) - qty
        cum = Decimal(order["cumExecQty"]) + qty
        fee = price * qty * _FEE_RATE[is_maker]
        now = str(self.clock_ms())
        order.update(orderStatus="Filled" if leaves == 0 else "PartiallyFilled", leavesQty=format(leaves, "f"),
                     cumExecQty=format(cum, "f"), cumExecFee=format(Decimal(order["cumExecFee"]) + fee, "f"),
                     cumExecValue=format(Decimal(order["cumExecValue"]) + price * qty, "f"), avgPrice=str(price),
                     updatedTime=now)
        return {"category": "linear", "symbol": order["symbol"], "closedSize": "0", "execFee": format(fee, "f"),
                "execId": str(uuid.uuid4()), "execPrice": str(price), "execQty": format(qty, "f"),
                "execType": "Trade", "execValue": format(price * qty, "f"), "feeRate": str(_FEE_RATE[is_maker]),
                "leavesQty": order["leavesQty"], "orderId": order["orderId"], "orderLinkId": order["orderLinkId"],
                "orderPrice": order["price"], "orderQty": order["qty"], "orderType": "Limit",
                "stopOrderType": "UNKNOWN", "side": order["side"], "execTime": now, "isLeverage": "0",
                "isMaker": is_maker, "markPrice": str(price), "createType": "CreateByUser", "seq": next(self._seq)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve("GET", "")

            def do_POST(self) -> None:
                self._serve("POST", self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())

            def _serve(self, method: str, body: str) -> None:
                status, text = server._http(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # tests read `answers`

        return Handler

    # --- WebSocket ----------------------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self.ws_connections += 1
        conn_id = f"loopback-private-{self.ws_connections}"
        authed = False
        try:
            async for message in ws:
                request = json.loads(message)
                op = str(request.get("op"))
                self.ws_ops.append(op)
                reply: dict[str, Any] = {"success": True, "ret_msg": "", "op": op, "conn_id": conn_id,
                                         "req_id": request.get("req_id", "")}
                if op == "auth":
                    refusal = self._check_ws_auth(request.get("args"))
                    authed = refusal is None
                    self.ws_auths += authed
                    reply.update(success=authed, ret_msg=refusal or "")
                elif op == "subscribe":
                    if not authed:
                        reply.update(success=False, ret_msg="loopback: subscribe before auth")
                    else:
                        self._subscribers.setdefault(ws, set()).update(request.get("args", []))
                elif op == "ping":
                    reply = {"req_id": reply["req_id"], "op": "pong", "args": [str(self.clock_ms())],
                             "conn_id": conn_id}
                await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self._subscribers.pop(ws, None)

    def _check_ws_auth(self, args: Any) -> str | None:
        if not isinstance(args, list) or len(args) != 3:
            return "loopback: auth takes [api_key, expires, signature]"
        key, expires, signature = args
        if key != self._key:
            return "loopback: unknown API key"
        if int(expires) <= self.clock_ms():
            return "loopback: expires is in the past"
        expected = hmac.new(self._secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, str(signature)) else "loopback: signature mismatch"

    async def _push_forever(self) -> None:
        """One pusher keeps the messages in the order the venue made them."""
        while True:
            items = await self._pushes.get()
            for item in items:
                channel = "execution" if "execId" in item else "order"
                message = {"id": f"loopback-{next(self._seq)}", "creationTime": self.clock_ms(), "data": [item]}
                for ws, topics in list(self._subscribers.items()):
                    topic = next((t for t in (f"{channel}.linear", channel) if t in topics), None)
                    if topic is not None:
                        with contextlib.suppress(ConnectionClosed):
                            await ws.send(json.dumps({"topic": topic, **message}))


_ROUTES: dict[tuple[str, str], Callable[[LoopbackBybitPrivate, dict[str, Any]], Answer]] = {
    ("POST", "/v5/order/create"): LoopbackBybitPrivate._create,
    ("POST", "/v5/order/cancel"): LoopbackBybitPrivate._cancel,
    ("POST", "/v5/order/cancel-all"): LoopbackBybitPrivate._cancel_all,
    ("GET", "/v5/order/realtime"): LoopbackBybitPrivate._realtime,
}
