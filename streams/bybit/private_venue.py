"""The live venue: `OrderIntent` in, `OrderEvent` out, on Bybit with real keys. Nothing here runs unless a caller
builds it with `Credentials` (the `--live` switch); paper trading is the default.

    async with LiveVenue(Credentials.from_env(), instruments) as venue:
        event = await venue.place(intent)          # ACCEPTED, or REJECTED with the reason
        async for event in venue.events(): ...     # fills, cancels, rejections from the private stream
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from liqbot.errors import LiqbotError
from schemas.records import Instrument, OrderEvent, OrderIntent, OrderStatus
from streams.bybit.private_parse import (
    OrderParams,
    OrderRefusedError,
    accepted_event,
    order_event,
    order_params,
    rejected_event,
)
from streams.bybit.private_rest import (
    DUPLICATE_ORDER_LINK_ID,
    ORDER_GONE_RET_CODES,
    BybitApiError,
    BybitPrivateRest,
    PrivateRestConfig,
    Reply,
    wall_ms,
)
from streams.bybit.private_ws import BybitPrivateStream, PrivateStreamConfig
from streams.bybit.signing import Credentials
from streams.venue import ms_to_ns

__all__ = ["LiveVenue", "LiveVenueConfig", "OrderNotFoundError"]

log = logging.getLogger(__name__)

_FINAL: set[OrderStatus] = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}


class OrderNotFoundError(LiqbotError):
    """Bybit knows no order with this client order id (never placed, or older than its recent-order window)."""


@dataclass(frozen=True, kw_only=True)
class LiveVenueConfig:
    """Durations in seconds."""

    rest: PrivateRestConfig = field(default_factory=PrivateRestConfig)
    stream: PrivateStreamConfig = field(default_factory=PrivateStreamConfig)
    settle_coin: str = "USDT"  # cancel_all() without a symbol cancels every linear order settled in it
    confirm_polls: int = 5  # a cancel is asynchronous on Bybit: read the order back until it is final
    confirm_interval_s: float = 0.2
    ready_timeout_s: float = 15.0


class LiveVenue:
    """Places post-only limits by REST and reports every change of our orders from the private stream."""

    def __init__(self, credentials: Credentials, instruments: Mapping[str, Instrument],
                 config: LiveVenueConfig | None = None, clock_ms: Callable[[], int] | None = None) -> None:
        self.config = config or LiveVenueConfig()
        self.instruments = dict(instruments)  # by symbol: tick size, lot size, minimum order
        self.rest = BybitPrivateRest(credentials, self.config.rest, clock_ms or wall_ms)
        self._events: asyncio.Queue[OrderEvent | None] = asyncio.Queue()
        self.stream = BybitPrivateStream(credentials, self.config.stream, self._events.put_nowait, self.rest.now_ms)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def venue(self) -> str:
        return self.config.stream.venue

    async def __aenter__(self) -> LiveVenue:
        """Syncs the clock with Bybit and waits until the private stream is authenticated and subscribed."""
        await self.rest.sync_time()
        self._task = asyncio.create_task(self.stream.run(self._stop))
        self._task.add_done_callback(lambda _: self._events.put_nowait(None))
        ready = asyncio.create_task(self.stream.ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, timeout=self.config.ready_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task in done:
            await self.__aexit__(None, None, None)  # raises what ended the stream (a refused key, say)
        if ready not in done:
            await self.__aexit__(None, None, None)
            raise LiqbotError(f"the private stream was not ready after {self.config.ready_timeout_s:.0f} s")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def events(self) -> AsyncIterator[OrderEvent]:
        """Order events from the private stream until the venue closes; raises what ended the stream early."""
        while (event := await self._events.get()) is not None:
            yield event
        if self._task is not None and self._task.done() and not self._stop.is_set():
            self._task.result()

    async def place(self, intent: OrderIntent) -> OrderEvent:
        """ACCEPTED (price and size as rounded and sent), or REJECTED with the reason; a duplicate client order id
        answers with the existing order's state. Raises RestError when Bybit could not be reached: the order's
        state is then unknown, and cancelling its client order id is safe."""
        if intent.mode != "LIVE":
            raise LiqbotError(f"{intent.client_order_id}: a {intent.mode} intent reached the live venue")
        now_ns = time.time_ns()
        instrument = self.instruments.get(intent.symbol)
        if instrument is None:
            return rejected_event(intent, f"refused before sending: no instrument record for {intent.symbol}",
                                  now_ns, now_ns)
        try:
            params = order_params(intent, instrument)
        except OrderRefusedError as exc:
            log.warning("order refused before sending: %s", exc)
            return rejected_event(intent, f"refused before sending: {exc}", now_ns, now_ns)
        reply = await self.rest.create(params)
        envelope = reply.envelope
        if envelope.ret_code == 0:
            return accepted_event(params, self.venue, envelope.result.get("orderId"),
                                  ts_event_ns=ms_to_ns(envelope.time_ms), ts_recv_ns=reply.ts_recv_ns)
        if envelope.ret_code == DUPLICATE_ORDER_LINK_ID:
            return await self._already_placed(params, reply)
        log.warning("order %s refused by Bybit: retCode %d: %s", params.order_link_id, envelope.ret_code,
                    envelope.ret_msg)
        return rejected_event(intent, f"retCode {envelope.ret_code}: {envelope.ret_msg}",
                              ms_to_ns(envelope.time_ms), reply.ts_recv_ns, params)

    async def _already_placed(self, params: OrderParams, reply: Reply) -> OrderEvent:
        log.info("order %s was placed before (duplicate orderLinkId): reading its state", params.order_link_id)
        item = await self.rest.find_order(params.symbol, params.order_link_id)
        event = order_event(item, self.venue, time.time_ns()) if item else None
        return event or accepted_event(params, self.venue, None, ts_event_ns=ms_to_ns(reply.envelope.time_ms),
                                       ts_recv_ns=reply.ts_recv_ns, reason="already placed (duplicate orderLinkId)")

    async def cancel(self, symbol: str, client_order_id: str) -> OrderEvent:
        """The order's state once Bybit has dealt with the cancel: CANCELLED, or FILLED when a fill won the race
        (a state that is still open after `confirm_polls` reads is returned as it is; the stream has the rest)."""
        reply = await self.rest.cancel(symbol, client_order_id)
        code, message = reply.envelope.ret_code, reply.envelope.ret_msg
        if code != 0 and code not in ORDER_GONE_RET_CODES:
            raise BybitApiError(reply.path, code, message)
        event: OrderEvent | None = None
        for poll in range(self.config.confirm_polls):
            if poll:
                await asyncio.sleep(self.config.confirm_interval_s)
            item = await self.rest.find_order(symbol, client_order_id)
            event = order_event(item, self.venue, time.time_ns()) if item else None
            if event is None or event.status in _FINAL:
                break
        if event is None:
            raise OrderNotFoundError(f"{symbol} {client_order_id}: Bybit has no such order (cancel: retCode {code}: "
                                f"{message})")
        return event

    async def cancel_all(self, symbol: str | None = None) -> tuple[str, ...]:
        """Cancels every open order of `symbol` (or of the settle coin); the client order ids Bybit cancelled."""
        reply = await self.rest.cancel_all(symbol, self.config.settle_coin)
        if reply.envelope.ret_code != 0:
            raise BybitApiError(reply.path, reply.envelope.ret_code, reply.envelope.ret_msg)
        cancelled = tuple(str(item.get("orderLinkId", "")) for item in reply.envelope.result.get("list") or [])
        log.info("cancel-all %s: %d orders", symbol or self.config.settle_coin, len(cancelled))
        return cancelled
