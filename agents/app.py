"""The Faust app: features, predict, decide and execute agents over the registry's topics.

Agents are thin: decode, call the decision step, send, count. Each keeps its state per source partition in a
table with a changelog topic (see `agents/partitions.py`); symbol-keyed topics share one partition count, so a
partition holds the same symbols in every topic and a worker that owns it owns those symbols everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import faust
from faust.types import TP

from agents.assignor import CopartitionedPartitionAssignor
from agents.changelog import StateChangelog
from agents.codec import AgentCodec
from agents.live import live_execute_agent
from agents.partitions import PartitionStates, Slot
from decision.features import FeatureEngine
from decision.paper import PaperAccount, PaperConfig, PaperVenue
from decision.pipeline import DecideStep, ExecuteStep, PredictStep
from decision.risk import AccountRisk
from decision.strategy import StrategyConfig
from liqbot.config import Settings
from schemas.records import (
    AvroRecord,
    BookUpdate,
    FeatureVector,
    Liquidation,
    Ticker,
    TopOfBook,
    Trade,
)
from streams.bybit.private_venue import LiveVenue
from streams.clients import Clients
from training.registry import ModelRegistry
from training.serving import ServedModel

__all__ = ["AgentOptions", "build_app"]

log = logging.getLogger(__name__)

S = TypeVar("S")
Handler = Callable[[S, AvroRecord], Sequence[AvroRecord]]

FEATURE_INPUTS = ("market.liquidations", "market.trades", "market.book", "market.top_of_book", "market.tickers")
DECIDE_INPUTS = ("predictions", "market.liquidations", "market.top_of_book", "market.instruments", "orders.events",
                 "positions")
EXECUTE_INPUTS = ("orders.intents", "orders.cancels", "market.trades", "market.top_of_book", "market.tickers",
                  "market.funding")
_MARKET = Liquidation | Trade | TopOfBook | BookUpdate | Ticker
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    """What one worker runs with; the consumer group (and so the symbol split) is `app_id` under the prefix."""

    app_id: str = "liqbot-agents"
    data_dir: Path = Path(".liqbot/agents")
    snapshot_every_s: float = 2.0  # state and acks go to the changelog at most this often per partition
    models_dir: Path | None = None  # the model registry (default: the committed one in training/models)
    starting_equity: float = 100_000.0  # paper account, quote units
    model_refresh_s: float = 30.0  # how often the predict agent looks for a new CURRENT model
    idle_check_s: float = 0.05  # how often held-back records are re-examined when no new record arrives
    status_every_s: float = 1.0  # how often the worker writes data_dir/status.json (partitions, symbols, counts)
    live: LiveVenue | None = None  # --live: intents go to Bybit instead of the paper venue
    session_timeout_s: float = 10.0  # a worker silent this long (killed, say) loses its partitions to the others


@dataclass
class _Runtime:
    app: faust.App
    codec: AgentCodec
    options: AgentOptions
    symbols: dict[str, Callable[[], set[tuple[str, str]]]]  # agent -> the (venue, symbol)s its state holds
    steps: dict[str, Callable[[], Counter[str]]]  # agent -> its decision step's counts (late, skipped, refused)
    applied: Counter[str] = field(default_factory=Counter)  # agent -> records it folded in (`liqbot bench agents`)

    def status(self) -> dict[str, Any]:
        """What this worker owns and did: for operators (`data_dir/status.json`) and the scaling tests."""
        trades = self.codec.topic("market.trades")
        assigned = sorted({tp.partition for tp in self.app.consumer.assignment() if tp.topic == trades})
        return {"pid": os.getpid(), "partitions": assigned, "counts": dict(sorted(self.codec.counts.items())),
                "symbols": {name: sorted("/".join(key) for key in held()) for name, held in self.symbols.items()},
                "applied": dict(sorted(self.applied.items())),
                "steps": {name: dict(sorted(counts().items())) for name, counts in self.steps.items()}}


def build_app(settings: Settings, options: AgentOptions) -> faust.App:
    """A Faust app on `settings`' broker; the registry's topics are created before it starts."""
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
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=options.session_timeout_s,
        broker_heartbeat_interval=min(3.0, options.session_timeout_s / 4),
        stream_wait_empty=False,  # unacknowledged events are not in a snapshot yet: the next owner reprocesses them
        producer_acks=-1,
        # Faust uses its own (co-partitioning) assignor only when tables or standbys exist, else aiokafka's round
        # robin; the agents keep state in their own changelogs (agents/changelog.py), so ask for standbys
        PartitionAssignor=CopartitionedPartitionAssignor,
        table_standby_replicas=1,
    )
    rt = _Runtime(app, AgentCodec(clients), options, {}, {})
    _features_agent(rt)
    _predict_agent(rt)
    _decide_agent(rt)
    if options.live is None:
        _execute_agent(rt)
    else:
        live_execute_agent(app, rt.codec, options.live, _RAW)
    status_path = options.data_dir / "status.json"

    async def status() -> None:
        report = rt.status()
        log.info("agents: partitions %s, %s", report["partitions"], report["counts"])
        status_path.with_suffix(".tmp").write_text(json.dumps(report, indent=1))
        status_path.with_suffix(".tmp").replace(status_path)

    app.timer(options.status_every_s)(status)
    return app


def _features_agent(rt: _Runtime) -> None:
    spec_engine = FeatureEngine()

    def handle(engine: FeatureEngine, record: AvroRecord) -> Sequence[AvroRecord]:
        if isinstance(record, _MARKET):
            vector = engine.update(record)
            return [vector] if vector is not None else []
        return []

    states = _partitioned_agent(rt, "features", inputs=FEATURE_INPUTS, handle=handle, merge=True,
                                factory=lambda: FeatureEngine(spec_engine.spec),
                                version=f"features:{spec_engine.fingerprint}")
    rt.symbols["features"] = lambda: {k for slot in states.slots.values() for k in slot.state.symbols}
    rt.steps["features"] = lambda: sum((slot.state.counts for slot in states.slots.values()), Counter())


def _predict_agent(rt: _Runtime) -> None:
    registry = ModelRegistry(rt.options.models_dir) if rt.options.models_dir else ModelRegistry()
    served = ServedModel(registry)  # no usable model: the worker does not start (it must not trade on nothing)
    step = PredictStep(lambda: served.scorer)
    log.info("predict agent serving model %s", served.version)
    rt.steps["predict"] = lambda: step.counts + served.scorer.counts

    def handle(_: None, record: AvroRecord) -> Sequence[AvroRecord]:
        return step.on_vector(record) if isinstance(record, FeatureVector) else []

    _partitioned_agent(rt, "predict", inputs=("features",), factory=lambda: None, version="predict:1",
                       handle=handle, merge=False)

    async def refresh() -> None:
        served.refresh()

    rt.app.timer(rt.options.model_refresh_s)(refresh)


def _decide_agent(rt: _Runtime) -> None:
    config = StrategyConfig(mode="PAPER" if rt.options.live is None else "LIVE")
    equity = rt.options.starting_equity

    def handle(step: DecideStep, record: AvroRecord) -> Sequence[AvroRecord]:
        return step.on_record(record)

    states = _partitioned_agent(rt, "decide", inputs=DECIDE_INPUTS, version="decide:1", handle=handle, merge=True,
                                factory=lambda: DecideStep(config, AccountRisk(equity)))
    rt.symbols["decide"] = lambda: {k for slot in states.slots.values() for k in slot.state.symbols}
    rt.steps["decide"] = lambda: sum((slot.state.counts for slot in states.slots.values()), Counter())

    async def dead_man() -> None:
        """Wall time only enters here: a partition silent for longer than the timeout cancels its orders."""
        now = time.monotonic()
        for slot in list(states.slots.values()):
            for cancel in slot.state.on_clock(int((now - slot.last_event_at) * 1e9)):
                rt.codec.send(cancel)

    rt.app.timer(1.0)(dead_man)


def _execute_agent(rt: _Runtime) -> None:
    equity = rt.options.starting_equity

    def handle(step: ExecuteStep, record: AvroRecord) -> Sequence[AvroRecord]:
        return step.on_record(record)

    def factory() -> ExecuteStep:
        return ExecuteStep(PaperVenue(PaperConfig(), PaperAccount(equity)))

    states = _partitioned_agent(rt, "execute", inputs=EXECUTE_INPUTS, version="execute:1", handle=handle,
                                merge=True, factory=factory)
    rt.symbols["execute"] = lambda: {k for slot in states.slots.values() for k in slot.state.venue.symbols}


def _partitioned_agent(rt: _Runtime, name: str, *, inputs: Sequence[str], factory: Callable[[], S], version: str,
                       handle: Handler[S], merge: bool) -> PartitionStates[S]:
    """An agent over `inputs` whose state lives per partition; `merge` feeds it in event-time order."""
    app, codec = rt.app, rt.codec
    changelog = StateChangelog(codec.clients.settings.kafka, f"{app.conf.id}-{name}-state-changelog")
    changelog.ensure()
    topics = [codec.topic(t) for t in inputs]
    states: PartitionStates[S] = PartitionStates(changelog, factory, codec, version=version,
                                                 every_s=rt.options.snapshot_every_s, sources=topics if merge else ())

    def apply(slot: Slot[S], topic: str, offset: int, record: AvroRecord | None, event: Any) -> None:
        rt.applied[name] += 1
        if record is not None:
            for out in handle(slot.state, record):
                codec.send(out)
        states.done(slot, event, topic, offset)

    def idle(partition: int) -> Callable[[Any], bool]:
        def caught_up(topic: Any) -> bool:
            try:
                high = app.consumer.highwater(TP(topic, partition))
            except AssertionError:  # aiokafka's word for "not assigned (any more)": hold everything back
                return False
            slot = states.slots.get(partition)
            return high is not None and (slot is None or slot.applied.get(topic, -1) + 1 >= high
                                         or slot.merge.newest_offset.get(topic, -1) + 1 >= high)
        return caught_up

    def drain(slot: Slot[S]) -> None:
        for topic, offset, record, event in slot.merge.release(idle(slot.partition)):
            apply(slot, topic, offset, record, event)

    @app.agent(app.topic(*topics, **_RAW), name=name)
    async def agent(stream: Any) -> None:
        async for event in stream.noack().events():
            msg = event.message
            slot = states.slot(msg.partition)
            if not slot.fresh(msg.topic, msg.offset):
                states.done(slot, event, msg.topic, msg.offset)
            else:
                record = codec.decode(msg.topic, msg.value, msg.key, msg.partition, msg.offset)
                if not merge:
                    apply(slot, msg.topic, msg.offset, record, event)
                else:
                    ts_ns = record.ts_event_ns if record is not None else -1  # type: ignore[attr-defined]
                    slot.merge.push(msg.topic, ts_ns, msg.offset, (msg.topic, msg.offset, record, event))
                    drain(slot)

    async def release_idle() -> None:
        """Held-back records whose other inputs have since been read to their end (no event to trigger it)."""
        for slot in list(states.slots.values()):
            if slot.merge:
                drain(slot)
            if slot.merge and log.isEnabledFor(logging.DEBUG):
                caught_up = idle(slot.partition)
                log.debug("partition %d: %d held back; newest %s; idle %s", slot.partition, len(slot.merge),
                          slot.merge.newest_ns, {t: caught_up(t) for t in slot.merge.sources})

    if merge:
        app.timer(rt.options.idle_check_s)(release_idle)
    app.timer(rt.options.snapshot_every_s / 2)(states.snapshot_due)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        states.revoke({tp.partition for tp in args[0]})

    app.on_partitions_revoked.connect(on_revoked)
    return states
