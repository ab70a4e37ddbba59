"""The Faust app: features, predict, decide and execute agents over the registry's topics."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from agents.codec import AgentCodec
from agents.partitions import PartitionStates
from decision.features import FeatureEngine
from liqbot.config import Settings
from schemas.records import BookUpdate, Liquidation, Ticker, TopOfBook, Trade
from streams.clients import Clients

__all__ = ["AgentOptions", "build_app"]

log = logging.getLogger(__name__)

MARKET_TOPICS = ("market.liquidations", "market.trades", "market.book", "market.top_of_book", "market.tickers")
_MARKET = Liquidation | Trade | TopOfBook | BookUpdate | Ticker
_RAW_SCHEMA: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    """What one worker runs with; the consumer group (and so the symbol split) is `app_id` under the prefix."""

    app_id: str = "liqbot-agents"
    data_dir: Path = Path(".liqbot/agents")
    snapshot_every_s: float = 2.0  # state and acks go to the changelog at most this often per partition


def build_app(settings: Settings, options: AgentOptions) -> faust.App:
    """A Faust app on `settings`' broker; topics are created by the registry before it starts."""
    clients = Clients.connect(settings)
    clients.topics.ensure(clients.admin())
    app = faust.App(
        settings.kafka.topic_prefix + options.app_id,
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",  # tables live in memory and are rebuilt from their changelog topics
        datadir=str(options.data_dir),
        web_enabled=False,
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        stream_wait_empty=False,  # unacknowledged events are not in a snapshot yet: the next owner reprocesses them
        producer_acks=-1,
    )
    codec = AgentCodec(clients)
    _features_agent(app, codec, options)

    async def progress() -> None:
        log.info("agents: %s", dict(sorted(codec.counts.items())))

    app.timer(10.0)(progress)

    return app


def _raw_topic(app: faust.App, *names: str) -> Any:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def _features_agent(app: faust.App, codec: AgentCodec, options: AgentOptions) -> None:
    table = app.Table("features-state", default=None, schema=_RAW_SCHEMA,
                      partitions=codec.clients.settings.kafka.partitions)
    engine = FeatureEngine()
    states: PartitionStates[FeatureEngine] = PartitionStates(
        table, lambda: FeatureEngine(engine.spec), codec, version=f"features:{engine.fingerprint}",
        every_s=options.snapshot_every_s)
    topic = _raw_topic(app, *(codec.topic(t) for t in MARKET_TOPICS))

    @app.agent(topic, name="features")
    async def features(stream: Any) -> None:
        async for event in stream.noack().events():
            msg = event.message
            slot = states.slot(msg.partition)
            if slot.fresh(msg.topic, msg.offset):
                record = codec.decode(msg.topic, msg.value, msg.key, msg.partition, msg.offset)
                if isinstance(record, _MARKET):
                    vector = slot.state.update(record)
                    if vector is not None:
                        codec.send(vector)
            await states.done(slot, event, msg.topic, msg.offset)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[Any] = args[0]
        states.revoke({tp.partition for tp in revoked})

    app.on_partitions_revoked.connect(on_revoked)
