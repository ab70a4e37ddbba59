"""Where the websockets library logs a ReconnectingSocket's connections: its own `websockets.client` logger unless
the socket is given another (the private stream's scrubbed log); against a loopback WebSocket server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection, serve

from streams.websocket import ReconnectingSocket, ReconnectPolicy

_SERVER_LOG = logging.getLogger("tests.server")


async def _one_message(ws_logger: logging.Logger | None) -> None:
    """One connection that receives one message ("hello"), then stops."""
    async def greet(ws: ServerConnection) -> None:
        await ws.send("hello")
        await ws.wait_closed()

    async def on_open(ws: ClientConnection) -> None:
        pass

    async def on_message(ws: ClientConnection, text: str, ts_recv_ns: int) -> None:
        stop.set()

    stop = asyncio.Event()
    async with serve(greet, "127.0.0.1", 0, logger=_SERVER_LOG) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        socket = ReconnectingSocket(f"ws://127.0.0.1:{port}", "test", ReconnectPolicy(silence_timeout_s=5), on_open,
                                    on_message, ws_logger=ws_logger)
        await asyncio.wait_for(socket.run(stop), 10)


@pytest.mark.parametrize(("ws_logger", "expected"), [(None, "websockets.client"),
                                                     (logging.getLogger("tests.frames"), "tests.frames")])
def test_frames_go_to_websockets_own_logger_by_default_or_to_the_given_one(
        caplog: pytest.LogCaptureFixture, ws_logger: logging.Logger | None, expected: str) -> None:
    caplog.set_level(logging.DEBUG)
    asyncio.run(_one_message(ws_logger))
    names = {r.name for r in caplog.records if r.name.startswith(("websockets", "tests"))} - {_SERVER_LOG.name}
    assert names == {expected}
    assert any(r.getMessage() == "< TEXT 'hello' [5 bytes]" for r in caplog.records if r.name == expected)
