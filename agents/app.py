"""The agents worker: features, predict, decide and execute agents over the registry's topics, in a Faust app.

Agents are thin: a decision step, its inputs and its state (`agents/steps.py`, which `liqbot backtest` builds its
chain from too). Each keeps its state per source partition with a changelog topic (`agents/partitions.py`); one
reader (`agents/runner.py`) feeds them all. Symbol-keyed topics share one partition count, so a partition holds the
same symbols in every topic and a worker that owns it owns those symbols everywhere. Faust runs the worker: start,
stop, signals, the model refresh and, under `--live`, the execute agent, whose Bybit calls are asynchronous I/O.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import mode

from agents import AGENTS
from agents.chain import Chain, Step, chains
from agents.changelog import StateChangelog
from agents.codec import AgentCodec
from agents.control import WorkerControls
from agents.live import live_execute_agent
from agents.metrics import GC_PAUSE_SECONDS, PROCESS_SECONDS, SNAPSHOT_SECONDS, WORKER, TimedScorer, decided
from agents.partitions import SNAPSHOT_EVERY_S, PartitionStates, Slot
from agents.pauses import GcPauses, Pauses
from agents.runner import Agent, Runner
from agents.steps import decide_step, execute_step, features_step, predict_step
from decision.paper import PaperConfig
from decision.pipeline import DecideStep, PredictStep
from decision.strategy import StrategyConfig
from liqbot.config import Settings
from liqbot.errors import LiqbotError
from schemas.records import AvroRecord
from streams.bybit.private_venue import LiveVenue
from streams.clients import Clients
from training.registry import ModelRegistry
from training.serving import ServedModel

__all__ = ["AgentOptions", "build_app"]

log = logging.getLogger(__name__)

_OBEY_EVERY_S = 0.1  # a kill switch reaches every partition's decisions within this of being read
_SAVE_CHECK_S = 0.1  # one snapshot per check at most: a round of all partitions at once would stall the agents
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    """What one worker runs with; the consumer group (and so the symbol split) is `app_id` under the prefix."""

    app_id: str = "liqbot-agents"
    agents: tuple[str, ...] = AGENTS  # a subset runs in a group of its own: agents can scale across processes
    data_dir: Path = Path(".liqbot/agents")
    snapshot_every_s: float = SNAPSHOT_EVERY_S  # state and acks go to the changelog this often per partition
    models_dir: Path | None = None  # the model registry (default: the committed one in training/models)
    starting_equity: float = 100_000.0  # paper account, quote units
    model_refresh_s: float = 30.0  # how often the predict agent looks for a new CURRENT model
    idle_check_s: float = 0.05  # how often held-back records are re-examined when no new record arrives
    status_every_s: float = 1.0  # how often the worker writes data_dir/status.json (partitions, symbols, counts)
    live: LiveVenue | None = None  # --live: intents go to Bybit instead of the paper venue
    paper: PaperConfig = field(default_factory=PaperConfig)  # the paper venue's latency and queue (as a backtest's)
    session_timeout_s: float = 10.0  # a worker silent this long (killed, say) loses its partitions to the others


@dataclass
class _Runtime:
    app: faust.App
    codec: AgentCodec
    options: AgentOptions
    group: str  # the reader's consumer group, which owns the agents' changelog topics (one state per group)
    steps: list[Step[Any]] = field(default_factory=list)  # the agents' logic, in the order records flow
    agents: list[tuple[Chain, Agent[Any]]] = field(default_factory=list)  # what the reader feeds
    symbols: dict[str, Callable[[], set[tuple[str, str]]]] = field(default_factory=dict)  # agent -> its symbols
    counts: dict[str, Callable[[], Counter[str]]] = field(default_factory=dict)  # agent -> its step's counts
    timers: list[tuple[float, Callable[[], None]]] = field(default_factory=list)  # work on the reader's thread
    controls: WorkerControls | None = None  # the safety controls, when this worker decides
    gc: GcPauses = field(default_factory=lambda: GcPauses(lambda generation: GC_PAUSE_SECONDS.labels(str(generation))))

    def states(self, name: str) -> list[Any]:
        """The states, one per owned partition, of the agent `name`."""
        return [state for chain, agent in self.agents
                for state in chain.states_of(name, [slot.state for slot in list(agent.states.slots.values())])]

    def status(self, runner: Runner) -> dict[str, Any]:
        """What this worker owns and did: for operators (`data_dir/status.json`) and the scaling tests."""
        assigned = sorted({p for _, p in runner.assigned})  # the same numbers in every topic (range assignor)
        return {"pid": os.getpid(), "partitions": assigned, "counts": self.codec.report(),
                "symbols": {name: sorted("/".join(key) for key in held()) for name, held in self.symbols.items()},
                "applied": {step.name: step.applied for step in self.steps},
                "snapshots": {agent.name: {**agent.states.pauses.report(), "last_bytes": agent.states.last_bytes}
                              for _, agent in self.agents},
                "gc": self.gc.report(),
                "controls": self.controls.report() if self.controls is not None else None,
                "steps": {name: dict(sorted(counts().items())) for name, counts in self.counts.items()}}


def build_app(settings: Settings, options: AgentOptions) -> faust.App:
    """A Faust worker app on `settings`' broker; the registry's topics are created before it starts."""
    unknown = set(options.agents) - set(AGENTS)
    if unknown or not options.agents:
        raise LiqbotError(f"unknown agents {sorted(unknown)}: choose among {', '.join(AGENTS)}")
    # no linger: the agents' outputs are sparse, and each one is the next hop's input
    clients = Clients.connect(settings, **{"linger.ms": 0})
    clients.topics.ensure(clients.admin())
    clients.register_schemas()  # before any partition is taken: the first decision must not wait on the registry
    stem = settings.kafka.topic_prefix + options.app_id
    # workers running the same agents share a group and split its partitions; another set of agents reads the
    # same topics in full, so it is another group, with its own offsets and so its own changelogs
    chosen = [name for name in AGENTS if name in options.agents]
    group = stem if len(chosen) == len(AGENTS) else f"{stem}.{'-'.join(chosen)}"  # Faust names a topic after it: no '+'
    app = faust.App(
        f"{group}-worker",  # Faust's own consumer group: only the live execute agent reads through it
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",
        datadir=str(options.data_dir),
        web_enabled=False,
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=options.session_timeout_s,
        broker_heartbeat_interval=min(3.0, options.session_timeout_s / 4),
        producer_acks=-1,
    )
    rt = _Runtime(app, AgentCodec(clients), options, group)
    for name in chosen:
        if name == "execute" and options.live is not None:
            live_execute_agent(app, rt.codec, options.live, _RAW)
        else:
            _BUILDERS[name](rt)
    for chain in chains(rt.steps, rt.codec.topic_of):
        rt.agents.append((chain, _agent(rt, chain)))
    runner = Runner(settings.kafka, group, rt.codec, [agent for _, agent in rt.agents],
                    idle_check_s=options.idle_check_s, session_timeout_s=options.session_timeout_s)
    for every_s, call in rt.timers:
        runner.every(every_s, call)
    runner.every(_SAVE_CHECK_S, runner.save)
    runner.every(1.0, clients.producer.poll)  # delivery reports (liqbot_records_produced_total) while outputs pause
    status_path = options.data_dir / "status.json"

    def status() -> None:
        report = rt.status(runner)
        log.info("agents: partitions %s, %s", report["partitions"], report["counts"])
        status_path.with_suffix(".tmp").write_text(json.dumps(report, indent=1))
        status_path.with_suffix(".tmp").replace(status_path)

    runner.every(options.status_every_s, status)

    @app.service
    class Reader(mode.Service):
        """The agents' reader thread, started and stopped with the worker."""

        async def on_start(self) -> None:
            # start-up objects (modules, schemas, the model) live as long as the worker: frozen, they are out of
            # every later full collection, which would otherwise pause the reader for longer as they pile up
            gc.collect()
            gc.freeze()
            rt.gc.install()
            if rt.controls is not None:
                rt.controls.start()  # the control topic folded first: a kill switch in force holds from the start
            runner.start()

        async def on_stop(self) -> None:
            await asyncio.get_running_loop().run_in_executor(None, runner.stop)
            if rt.controls is not None:
                rt.controls.stop()

    return app


def _features_agent(rt: _Runtime) -> None:
    _step(rt, features_step(topic=rt.codec.topic))
    rt.symbols["features"] = lambda: {k for engine in rt.states("features") for k in engine.symbols}
    rt.counts["features"] = lambda: sum((engine.counts for engine in rt.states("features")), Counter())


def _predict_agent(rt: _Runtime) -> None:
    registry = ModelRegistry(rt.options.models_dir) if rt.options.models_dir else ModelRegistry()
    served = ServedModel(registry)  # no usable model: the worker does not start (it must not trade on nothing)
    WORKER.models.append(served)
    scorer = TimedScorer(served)
    step = PredictStep(lambda: scorer)
    log.info("predict agent serving model %s", served.version)
    rt.counts["predict"] = lambda: step.counts + served.scorer.counts
    _step(rt, predict_step(step, topic=rt.codec.topic))

    async def refresh() -> None:
        served.refresh()

    rt.app.timer(rt.options.model_refresh_s)(refresh)


def _decide_agent(rt: _Runtime) -> None:
    config = StrategyConfig(mode="PAPER" if rt.options.live is None else "LIVE")
    _step(rt, decide_step(config, rt.options.starting_equity, decided, topic=rt.codec.topic))
    rt.symbols["decide"] = lambda: {k for step in rt.states("decide") for k in step.symbols}
    rt.counts["decide"] = lambda: sum((step.counts for step in rt.states("decide")), Counter())
    WORKER.decide_states.append(lambda: rt.states("decide"))

    def dead_man() -> None:
        """Wall time only enters here: a partition silent for longer than the timeout cancels its orders."""
        now = time.monotonic()
        for chain, slot, step in _decide_states(rt):
            _spread(rt, chain, slot, step.on_clock(int((now - slot.last_event_at) * 1e9)))

    controls = rt.controls = WorkerControls(rt.codec.clients)

    def obey() -> None:
        """The operator's kill switch (or the dead-man switch's) applied to every partition's decisions."""
        state = controls.tick()
        for chain, slot, step in _decide_states(rt):
            _spread(rt, chain, slot, step.on_kill(state.kill_reason, state.kill_command_id, time.time_ns()))

    rt.timers.append((1.0, dead_man))
    rt.timers.append((_OBEY_EVERY_S, obey))


def _decide_states(rt: _Runtime) -> Iterator[tuple[Chain, Slot[Any], DecideStep]]:
    for chain, agent in rt.agents:
        for slot in list(agent.states.slots.values()):
            for step in chain.states_of("decide", [slot.state]):
                yield chain, slot, step


def _spread(rt: _Runtime, chain: Chain, slot: Slot[Any], records: Sequence[AvroRecord]) -> None:
    """Records a timer made for one partition's decide state: sent, and to execute too if it is chained."""
    for record in chain.spread(slot.state, records, maker="decide"):
        rt.codec.send(record)


def _execute_agent(rt: _Runtime) -> None:
    _step(rt, execute_step(rt.options.starting_equity, rt.options.paper, topic=rt.codec.topic))
    rt.symbols["execute"] = lambda: {k for step in rt.states("execute") for k in step.venue.symbols}


def _step(rt: _Runtime, step: Step[Any]) -> None:
    """An agent's step (agents/steps.py), timed and counted as the worker's."""
    step.timer = PROCESS_SECONDS.labels(step.name)
    rt.steps.append(step)
    WORKER.flows.append(step)


def _agent(rt: _Runtime, chain: Chain) -> Agent[list[Any]]:
    """What the reader feeds a chain: its topics, and its members' states per partition in one changelog."""
    changelog = StateChangelog(rt.codec.clients.settings.kafka, f"{rt.group}-{chain.name}-state-changelog")
    changelog.ensure()
    states: PartitionStates[list[Any]] = PartitionStates(
        changelog, chain.new, version=chain.version, every_s=rt.options.snapshot_every_s,
        sources=chain.inputs if chain.merge else (), pauses=Pauses(SNAPSHOT_SECONDS.labels(chain.name)))
    compiled = chain.compiled is not None and chain.merge
    return Agent(chain.name, chain.inputs, states, chain.handle, chain.merge, chain.reject, chain.events,
                 chain.engine if compiled else None, chain.folded)


_BUILDERS: dict[str, Callable[[_Runtime], None]] = {
    "features": _features_agent, "predict": _predict_agent, "decide": _decide_agent, "execute": _execute_agent}
