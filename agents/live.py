"""The execute agent under `--live`: intents to Bybit, cancel requests to Bybit, Bybit's order events to Kafka.

No state of its own: Bybit holds the orders. A redelivered intent is placed again with the same orderLinkId,
which Bybit refuses as a duplicate and the venue answers with the existing order, so at-least-once delivery
never doubles an order.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents.codec import AgentCodec
from agents.metrics import WORKER, Flow
from schemas.records import Instrument, OrderCancel, OrderIntent
from streams.bybit.private_parse import rejected_event
from streams.bybit.private_venue import LiveVenue

__all__ = ["live_execute_agent"]

log = logging.getLogger(__name__)

LIVE_INPUTS = ("orders.intents", "orders.cancels", "market.instruments")


def live_execute_agent(app: faust.App, codec: AgentCodec, venue: LiveVenue, raw: dict[str, Any]) -> None:
    """Register the agent, and a task that holds the venue open and publishes its order events."""
    topic = app.topic(*(codec.topic(t) for t in LIVE_INPUTS), **raw)
    flow = Flow("execute")
    WORKER.flows.append(flow)

    def send(event: Any) -> None:
        codec.send(event)
        flow.gave(codec.topic_of(event))

    @app.agent(topic, name="execute-live")
    async def execute_live(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            record = codec.decode(msg.topic, msg.value, msg.key, msg.partition, msg.offset)
            if record is None:
                flow.errors += 1
                continue
            flow.took(msg.topic)
            if isinstance(record, Instrument) and record.venue == venue.venue:
                venue.instruments[record.symbol] = record
            elif isinstance(record, OrderIntent):
                send(await _place(venue, record))
            elif isinstance(record, OrderCancel) and record.venue == venue.venue:
                cancelled = await venue.cancel_all(record.symbol)
                log.warning("cancelled %d orders of %s: %s", len(cancelled), record.symbol, record.reason)

    async def hold_venue() -> None:
        async with venue:
            log.warning("LIVE trading on %s", venue.venue)
            async for order_event in venue.events():
                send(order_event)

    app.task(hold_venue)


async def _place(venue: LiveVenue, intent: OrderIntent) -> Any:
    if intent.venue != venue.venue:
        return rejected_event(intent, f"the live venue is {venue.venue}, not {intent.venue}",
                              intent.ts_event_ns, intent.ts_recv_ns)
    return await venue.place(intent)
