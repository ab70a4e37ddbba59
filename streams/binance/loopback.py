"""A loopback stand-in for Binance USD-M public market data: the combined-stream socket and the REST depth
snapshot, serving frames and a snapshot reply from a real capture. For tests and offline development."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["LoopbackBinance"]


class LoopbackBinance:
    """`/stream?streams=a/b` serves the captured frames of those streams in order; `/fapi/v1/depth` the reply."""

    def __init__(self, frames: Iterable[str], depth_reply: str) -> None:
        self.frames = [(json.loads(f)["stream"], f) for f in frames]
        self.depth_reply = depth_reply
        self.cursor = 0
        self.connections = 0
        self.depth_requests: list[str] = []
        self._server: Server | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http_thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.port = 0

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._http_thread.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._httpd.shutdown()
        self._httpd.server_close()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path if ws.request else "").query)
        wanted = set(query.get("streams", [""])[0].split("/"))
        try:
            while self.cursor < len(self.frames):
                stream, frame = self.frames[self.cursor]
                self.cursor += 1
                if stream in wanted:
                    await ws.send(frame)
            await ws.wait_closed()
        except ConnectionClosed:
            pass

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith("/fapi/v1/depth"):
                    self.send_error(404)
                    return
                server.depth_requests.append(self.path)
                data = server.depth_reply.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
