"""Bybit v5 private WebSocket: authenticate, subscribe `order` and `execution`, ping, reconnect; nothing else.

Every (re)connection authenticates afresh (a new `expires`, on Bybit's clock) and resubscribes. A refused
authentication or subscription ends the stream with `PrivateStreamError`: trading on without order updates is not
safe, and retrying refused keys only hammers the venue. Parsing lives in private_parse.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from websockets.asyncio.client import ClientConnection

from liqbot.errors import LiqbotError
from schemas.records import OrderEvent
from streams.bybit.private_parse import PrivateMessage, parse_private
from streams.bybit.signing import Credentials, ws_auth_request
from streams.venue import ParseError
from streams.websocket import ReconnectingSocket, ReconnectPolicy

__all__ = ["PRIVATE_URL", "BybitPrivateStream", "PrivateStreamConfig", "PrivateStreamError"]

log = logging.getLogger(__name__)

PRIVATE_URL = "wss://stream.bybit.com/v5/private"
_FRAME_LOGGER = "websockets.client"  # logs every frame at DEBUG, the auth frame (with the key) included


class PrivateStreamError(LiqbotError):
    """Bybit refused the private stream's authentication or subscription."""


class _ScrubbedFrameLog(logging.LoggerAdapter[logging.Logger]):
    """websockets' logger for one private stream: every message is scrubbed of the credentials before it reaches
    `websockets.client`, whose name, level and handlers it keeps; no logger is modified."""

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(logging.getLogger(_FRAME_LOGGER))
        self._credentials = credentials

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = logging.LogRecord(self.logger.name, level, "", 0, msg, args, None).getMessage()  # as logging formats
        clean = self._credentials.redact(text)
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # the record names websockets' call, not this one
        if clean == text:
            self.logger.log(level, msg, *args, **kwargs)
        else:
            self.logger.log(level, clean, **kwargs)


@dataclass(frozen=True, kw_only=True)
class PrivateStreamConfig:
    """Durations in seconds unless the name says ms."""

    url: str = PRIVATE_URL
    venue: str = "bybit-linear"
    category: str = "linear"  # subscribes order.{category} and execution.{category}
    ping_interval_s: float = 20.0
    auth_valid_for_ms: int = 10_000  # `expires` = Bybit's now + this
    reply_timeout_s: float = 10.0  # for the auth reply; silence is a dead connection
    policy: ReconnectPolicy = field(default_factory=ReconnectPolicy)


class BybitPrivateStream:
    """Hands every `OrderEvent` of our orders to `on_event`; `ready` is set while subscribed."""

    def __init__(self, credentials: Credentials, config: PrivateStreamConfig, on_event: Callable[[OrderEvent], None],
                 clock_ms: Callable[[], int]) -> None:
        self.config = config
        self._credentials = credentials
        self._on_event = on_event
        self._clock_ms = clock_ms  # Bybit's clock (the REST client's corrected one): expires is judged by it
        self._req_ids = count(1)
        self.topics = [f"order.{config.category}", f"execution.{config.category}"]
        self.ready = asyncio.Event()
        self.authentications = 0
        self.parse_errors = 0
        self.skipped = 0
        self.socket = ReconnectingSocket(config.url, config.venue, config.policy, self._on_open, self._on_message,
                                         keepalive=self._ping, ws_logger=_ScrubbedFrameLog(credentials))

    @property
    def reconnects(self) -> int:
        return self.socket.reconnects

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; raises PrivateStreamError when Bybit refuses the keys or the subscription."""
        try:
            await self.socket.run(stop)
        finally:
            self.ready.clear()

    async def _on_open(self, ws: ClientConnection) -> None:
        self.ready.clear()
        expires_ms = self._clock_ms() + self.config.auth_valid_for_ms
        await ws.send(ws_auth_request(self._credentials, expires_ms, f"auth-{next(self._req_ids)}"))
        reply = await self._reply(ws, "auth")
        if not reply.success:
            raise PrivateStreamError(f"Bybit refused the private stream's authentication: "
                                     f"{self._credentials.redact(reply.ret_msg)!r}")
        self.authentications += 1
        await self._send(ws, {"op": "subscribe", "args": self.topics})

    async def _reply(self, ws: ClientConnection, op: str) -> PrivateMessage:
        while True:  # the answer to `op` is the first message on a fresh connection; anything else is skipped
            message = await asyncio.wait_for(ws.recv(), self.config.reply_timeout_s)
            text = message if isinstance(message, str) else message.decode("utf-8", errors="replace")
            parsed = self._parse(text, 0)
            if parsed is not None and parsed.kind == "reply" and parsed.op == op:
                return parsed

    async def _on_message(self, ws: ClientConnection, text: str, ts_recv_ns: int) -> None:
        parsed = self._parse(text, ts_recv_ns)
        if parsed is None:
            return
        if parsed.kind == "reply":
            self._on_reply(parsed)
            return
        self.skipped += parsed.skipped
        for event in parsed.events:
            self._on_event(event)

    def _parse(self, text: str, ts_recv_ns: int) -> PrivateMessage | None:
        try:
            return parse_private(text, self.config.venue, self.config.category, ts_recv_ns)
        except ParseError as exc:
            self.parse_errors += 1  # counted and logged with context; the stream goes on
            log.error("private stream %s: bad message (%s): %s", self.config.url, exc,
                      self._credentials.redact(text[:300]))
            return None

    def _on_reply(self, reply: PrivateMessage) -> None:
        if reply.op != "subscribe":
            return  # pongs
        if not reply.success:
            raise PrivateStreamError(f"Bybit refused the subscription to {self.topics}: {reply.ret_msg!r}")
        self.ready.set()
        log.info("private stream subscribed to %s", ", ".join(self.topics))

    async def _send(self, ws: ClientConnection, request: dict[str, object]) -> None:
        await ws.send(json.dumps({**request, "req_id": str(next(self._req_ids))}))

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval_s)
            await self._send(ws, {"op": "ping"})
