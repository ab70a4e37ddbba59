"""A loopback stand-in for Bybit's public WebSocket: the v5 subscribe/ping protocol, serving captured frames.

It is the protocol peer for tests and offline development (Bybit itself cannot be reached from here).
Frames come from a real capture, in capture order, for the topics a client subscribed; faults are
scripted: drop the connection, go silent, inject raw text, skip a frame (a sequence gap), repeat a frame.
A client that resubscribes an order book after a gap gets a snapshot rebuilt from the frames read so far
(the only frame the server makes itself, and it carries only levels the capture sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["Faults", "LoopbackBybit", "LoopbackBybitRest"]

_CHANNELS = {"publicTrade", "allLiquidation", "liquidation", "orderbook", "tickers", "kline"}


@dataclass
class Faults:
    """Scripted misbehaviour, by index in the served frame sequence (0-based)."""

    drop_after: set[int] = field(default_factory=set)  # close the connection after serving this index
    silent_after: set[int] = field(default_factory=set)  # stop sending (and answering pings) after this index
    inject_before: dict[int, str] = field(default_factory=dict)  # raw text sent before this index
    skip: set[int] = field(default_factory=set)  # never sent
    repeat: set[int] = field(default_factory=set)  # sent twice


@dataclass
class _Book:
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)

    def feed(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "snapshot":
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, frame["data"]["b"]), (self.asks, frame["data"]["a"])):
            for price, size in levels:
                if float(size) == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = size
        self.last = frame

    def snapshot(self) -> str:
        data = {**self.last["data"], "b": sorted(self.bids.items(), key=lambda lv: -float(lv[0])),
                "a": sorted(self.asks.items(), key=lambda lv: float(lv[0]))}
        return json.dumps({**self.last, "type": "snapshot", "data": data})


class LoopbackBybit:
    """Serve `frames` (raw Bybit v5 public frame texts) to subscribers on 127.0.0.1."""

    def __init__(self, frames: Iterable[str], faults: Faults | None = None, frame_interval_s: float = 0.0) -> None:
        self.frames = [(json.loads(f).get("topic", ""), f) for f in frames]
        self.faults = faults or Faults()
        self.frame_interval_s = frame_interval_s
        self.cursor = 0  # shared by successive connections: a reconnect resumes, as the live feed would
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.books: dict[str, _Book] = {}
        self._server: Server | None = None
        self._wire = asyncio.Lock()  # a book frame is read and sent as one step, so snapshots never straddle it
        self.port = 0

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v5/public/linear"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn_id = f"loopback-{self.connections}"
        subscribed: set[str] = set()
        silent = asyncio.Event()
        pump = asyncio.create_task(self._pump(ws, subscribed, silent))
        try:
            async for message in ws:
                request = json.loads(message)
                self.requests.append(request)
                if silent.is_set():
                    continue
                reply = await self._answer(ws, request, subscribed, conn_id)
                await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _answer(self, ws: ServerConnection, request: dict[str, Any], subscribed: set[str],
                      conn_id: str) -> dict[str, Any]:
        op = request.get("op")
        reply = {"success": True, "ret_msg": "", "conn_id": conn_id, "req_id": request.get("req_id", ""), "op": op}
        if op == "ping":
            return {**reply, "ret_msg": "pong"}
        args = list(request.get("args", []))
        if op == "subscribe":
            unknown = [a for a in args if a.split(".", 1)[0] not in _CHANNELS]
            if unknown:  # the venue refuses the whole request, as Bybit does
                return {**reply, "success": False, "ret_msg": f"error:handler not found,topic:{unknown[0]}"}
            subscribed.update(args)
            async with self._wire:
                for topic in args:  # a (re)subscribed book starts with a snapshot, as on the venue
                    if topic in self.books and self.books[topic].last:
                        await ws.send(self.books[topic].snapshot())
        elif op == "unsubscribe":
            subscribed.difference_update(args)
        return reply

    async def _pump(self, ws: ServerConnection, subscribed: set[str], silent: asyncio.Event) -> None:
        while not subscribed:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # let the client's remaining subscribe requests arrive
        while self.cursor < len(self.frames):
            index = self.cursor
            self.cursor += 1
            topic, frame = self.frames[index]
            async with self._wire:
                if topic.startswith("orderbook."):
                    self.books.setdefault(topic, _Book()).feed(json.loads(frame))
                if index in self.faults.inject_before:
                    await ws.send(self.faults.inject_before[index])
                if topic in subscribed and index not in self.faults.skip:
                    for _ in range(2 if index in self.faults.repeat else 1):
                        await ws.send(frame)
            if self.frame_interval_s:
                await asyncio.sleep(self.frame_interval_s)
            if index in self.faults.drop_after:
                await ws.close()
                return
            if index in self.faults.silent_after:
                silent.set()
                return


class LoopbackBybitRest:
    """Bybit's `/v5/market/instruments-info` on 127.0.0.1, answering from a captured real reply.

    `throttle_first` requests get Bybit's rate-limit answer (retCode 10006, X-Bapi-Limit-Status 0).
    """

    def __init__(self, instruments_reply: str, throttle_first: int = 0, reset_after_ms: int = 200,
                 other_replies: dict[str, str] | None = None) -> None:
        self.reply = json.loads(instruments_reply)
        self.other_replies = other_replies or {}  # path -> reply text ("{symbol}" = the requested symbol)
        self.throttle_first = throttle_first
        self.reset_after_ms = reset_after_ms
        self.requests: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, path: str) -> tuple[dict[str, Any], dict[str, str]]:
        self.requests.append(path)
        now_ms = int(time.time() * 1000)
        if len(self.requests) <= self.throttle_first:
            headers = {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit": "10",
                       "X-Bapi-Limit-Reset-Timestamp": str(now_ms + self.reset_after_ms)}
            return {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": now_ms}, headers
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        wanted = set(query.get("symbol", []))
        listed = [i for i in self.reply["result"]["list"] if not wanted or i["symbol"] in wanted]
        body = {**self.reply, "result": {**self.reply["result"], "list": listed}}
        return body, {"X-Bapi-Limit-Status": "9", "X-Bapi-Limit": "10",
                      "X-Bapi-Limit-Reset-Timestamp": str(now_ms + 1000)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                other = server.other_replies.get(self.path.partition("?")[0])
                if other is not None:
                    server.requests.append(self.path)
                    query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                    data = other.replace("{symbol}", query.get("symbol", [""])[0]).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if not self.path.startswith("/v5/market/instruments-info"):
                    self.send_error(404)
                    return
                body, headers = server._answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(200)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read `requests`

        return Handler
