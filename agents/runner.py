"""The agents' records move here: one librdkafka consumer per worker, read in batches on a thread of its own.

Faust's stream path costs ~75 µs a message on this machine (an agent that does nothing reads 12-16k messages/s,
`liqbot bench agents`), so the agents' budget of 20 µs a record cannot pass through it. The worker reads every
agent's inputs with one consumer in one group, decodes each message once and hands it to each agent that reads
its topic. The range assignor gives a member the same partition numbers of every topic, so a worker that owns
a partition owns its symbols in every topic. Faust runs the worker around this thread: start, stop, signals.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from liqbot_core import MarketFold

from agents.chain import Handler, Point
from agents.codec import AgentCodec
from agents.partitions import PartitionStates, Slot
from liqbot.config import KafkaSettings
from schemas.records import AvroRecord
from streams.consumer import consumer_config

__all__ = ["Agent", "Runner"]

log = logging.getLogger(__name__)

S = TypeVar("S")
Held = tuple[str, int, Any]  # topic, offset, record or MarketEvent (None: dead-lettered, only its offset counts)

_BATCH = 2_000  # messages taken from librdkafka's queue at once (it has fetched them already)
_UNDECODED: Any = object()


@dataclass
class Agent(Generic[S]):
    """One agent: the topics it reads, its state per partition and the step that turns a record into outputs."""

    name: str
    inputs: tuple[str, ...]
    states: PartitionStates[S]
    handle: Handler[S]
    merge: bool  # feed it in event-time order across its inputs (streams/merge.py)
    failed: Callable[[str], None] = lambda topic: None  # an input of this topic was dead-lettered (counted)
    events: frozenset[str] = frozenset()  # inputs it takes as `MarketEvent`s, decoded without a record object
    # a state's compiled engine, when the core can fold whole consumed batches of its inputs (`MarketFold`), and
    # what the agent makes of a fold's decision points and counts
    engine: Callable[[S], Any] | None = None
    folded: Callable[[Sequence[Point], dict[str, tuple[int, int, int]], float], list[AvroRecord]] | None = None


@dataclass
class _Timer:
    every_s: float
    call: Callable[[], None]
    due_at: float = field(default_factory=time.monotonic)


class Runner(threading.Thread):
    """Reads, folds in, snapshots and commits for every agent of the worker; `stop` saves and leaves the group."""

    def __init__(self, kafka: KafkaSettings, group_id: str, codec: AgentCodec, agents: Sequence[Agent[Any]], *,
                 idle_check_s: float, session_timeout_s: float) -> None:
        super().__init__(name="agents-runner", daemon=True)
        self.codec = codec
        self.agents = list(agents)
        self._readers: dict[str, list[Agent[Any]]] = defaultdict(list)
        for agent in self.agents:
            for topic in agent.inputs:
                self._readers[topic].append(agent)
        # a topic read only by agents that take MarketEvents is decoded straight into them: no record objects
        self._decode = {topic: codec.decode_event if all(topic in a.events for a in readers) else codec.decode
                        for topic, readers in self._readers.items()}
        # an agent whose every input only it reads, and whose whole work the core does: its share of each batch
        # goes to the core in one call, not message by message
        self._folds = {agent.name: MarketFold(codec.market_decoder(), set(agent.inputs), codec.decode, self._high_mark)
                       for agent in self.agents
                       if agent.engine is not None and all(self._readers[t] == [agent] for t in agent.inputs)}
        self._idle_check_s = idle_check_s
        self._timers: list[_Timer] = []
        self._stopping = threading.Event()
        self._committed: dict[tuple[str, int], int] = {}
        self._read: dict[tuple[str, int], int] = {}  # newest offset taken from the consumer per topic partition
        self._high: dict[tuple[str, int], int] = {}  # high-water marks looked up in this batch
        self._idlers: dict[int, Callable[[Any], bool]] = {}
        self.assigned: frozenset[tuple[str, int]] = frozenset()
        self._consumer = Consumer(consumer_config(
            kafka, group_id, **{"enable.auto.commit": False, "partition.assignment.strategy": "range",
                                "session.timeout.ms": int(session_timeout_s * 1000),
                                "heartbeat.interval.ms": int(min(3.0, session_timeout_s / 4) * 1000),
                                "fetch.wait.max.ms": 100,
                                "enable.partition.eof": True}))

    def every(self, seconds: float, call: Callable[[], None]) -> None:
        """Run `call` on this thread about every `seconds` (work that touches the agents' state)."""
        self._timers.append(_Timer(seconds, call))

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stopping.set()
        self.join(timeout_s)

    def run(self) -> None:
        try:
            self._consumer.subscribe(sorted(self._readers), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                     on_lost=self._on_lost)
            while not self._stopping.is_set():
                self._step()
            self._consumer.unsubscribe()  # a clean hand-over: on_revoke saves every slot before leaving
        except BaseException:
            # a worker that no longer reads must not hold its partitions: exit, so that the group moves them on
            # and a supervisor restarts it (what it had not saved is read again from the committed offsets)
            log.critical("agents: the reader failed; the worker exits", exc_info=True)
            os._exit(3)
        self._consumer.close()

    def _step(self) -> None:
        first = self._consumer.poll(self._idle_check_s)
        self._high.clear()
        if first is not None:
            # poll, then take what is already fetched: consume(n) would wait for n messages or its timeout
            batch = [first, *self._consumer.consume(_BATCH, 0)]
            for agent in self.agents:
                fold = self._folds.get(agent.name)
                if fold is not None:
                    batch = self._fold(agent, fold, batch)
            for msg in batch:
                self._dispatch(msg)
        # what waited on inputs that have since been read to their end
        for agent in self.agents:
            if agent.merge:
                for slot in list(agent.states.slots.values()):
                    if slot.merge:
                        self._drain(agent, slot)
        now = time.monotonic()
        for timer in self._timers:
            if now >= timer.due_at:
                timer.due_at = now + timer.every_s
                timer.call()

    def _dispatch(self, msg: Message) -> None:
        error = msg.error()
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                # read to its end: a partition with nothing after its committed offset gives no message, so
                # without this its merges would wait for it forever (after a rebalance, say)
                self._read[(topic, partition)] = max(self._read.get((topic, partition), -1), offset - 1)
            else:
                log.warning("consumer: %s", error.str())
            return
        self._read[(topic, partition)] = offset
        record = _UNDECODED
        for agent in self._readers[topic]:
            slot = agent.states.slot(partition)
            if not slot.fresh(topic, offset):
                agent.states.done(slot, topic, offset)
                continue
            if record is _UNDECODED:
                record = self._decode[topic](topic, msg.value(), msg.key(), partition, offset)
            if agent.merge:
                ts_ns = record.ts_event_ns if record is not None else -1
                slot.merge.push(topic, ts_ns, offset, (topic, offset, record))
                self._drain(agent, slot)
            else:
                self._apply(agent, slot, (topic, offset, record))

    def _fold(self, agent: Agent[Any], fold: MarketFold, batch: list[Message]) -> list[Message]:
        """The core folds the agent's messages of the batch; returns the others."""
        started = time.perf_counter()
        rest, points, counts = fold.fold(batch, lambda p: self._parts(agent, agent.states.slot(p)), self._read)
        self._folded(agent, points, counts, time.perf_counter() - started)
        return rest

    def _parts(self, agent: Agent[Any], slot: Slot[Any]) -> tuple[Any, Any, dict[str, int]]:
        assert agent.engine is not None
        return agent.engine(slot.state), slot.merge, slot.applied

    def _folded(self, agent: Agent[Any], points: list[tuple[int, Any, int, tuple[float, ...]]],
                counts: dict[str, tuple[int, int, int]], seconds: float) -> None:
        for topic, (decoded, _, failed) in counts.items():
            self.codec.count(topic, decoded)
            for _ in range(failed):
                agent.failed(topic)
        assert agent.folded is not None
        slots = agent.states.slots
        for out in agent.folded([(slots[p].state, *point) for p, *point in points], counts, seconds):
            self.codec.send(out)

    def _drain(self, agent: Agent[Any], slot: Slot[Any]) -> None:
        fold = self._folds.get(agent.name)
        if fold is not None:
            started = time.perf_counter()
            points, counts = fold.drain(slot.partition, self._parts(agent, slot), self._read)
            self._folded(agent, points, counts, time.perf_counter() - started)
            return
        idle = self._idlers.get(slot.partition)
        if idle is None:  # one per partition, not one per message
            idle = self._idlers[slot.partition] = self._idle(slot.partition)
        for held in slot.merge.release(idle):
            self._apply(agent, slot, held)

    def _apply(self, agent: Agent[Any], slot: Slot[Any], held: Held) -> None:
        topic, offset, record = held
        if record is not None:
            for out in agent.handle(slot.state, record):
                self.codec.send(out)
        else:
            agent.failed(topic)
        agent.states.done(slot, topic, offset)

    def _high_mark(self, topic: str, partition: int) -> int:
        """librdkafka's high-water mark of a partition as its last fetch reported it (-1: none yet)."""
        return int(self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1])

    def _idle(self, partition: int) -> Callable[[Any], bool]:
        """Whether a topic of `partition` has nothing unread right now: read up to the high-water mark that a
        fetch reported (librdkafka's, looked up once per batch: it moves only when a fetch returns)."""
        def caught_up(topic: Any) -> bool:
            key = (topic, partition)
            high = self._high.get(key)
            if high is None:
                high = self._high[key] = self._consumer.get_watermark_offsets(TopicPartition(*key), cached=True)[1]
            return high >= 0 and self._read.get(key, -1) + 1 >= high
        return caught_up

    def save(self) -> None:
        """Snapshot the most overdue slot of all agents, and commit the offsets every reader has saved."""
        overdue = [(found, agent) for agent in self.agents if (found := agent.states.most_overdue()) is not None]
        if overdue:
            (_, slot), agent = max(overdue, key=lambda pair: pair[0][0])
            self.codec.flush()  # every output so far is on the broker before a snapshot may claim it
            agent.states.snapshot(slot)
        for agent in self.agents:
            agent.states.poll()
        self._commit()

    def _commit(self, *, asynchronous: bool = True) -> None:
        offsets = []
        for topic, partition in self.assigned:
            saved = [a.states.slots[partition].acked.get(topic) if partition in a.states.slots else None
                     for a in self._readers[topic]]
            if None in saved:
                continue  # a reader has not saved this partition yet: committing would skip its records
            position = min(s for s in saved if s is not None) + 1
            if self._committed.get((topic, partition)) != position:
                self._committed[(topic, partition)] = position
                offsets.append(TopicPartition(topic, partition, position))
        if offsets and asynchronous:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        elif offsets:
            self._consumer.commit(offsets=offsets, asynchronous=False)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned = frozenset((tp.topic, tp.partition) for tp in partitions)
        log.info("agents: assigned partitions %s", sorted({tp.partition for tp in partitions}))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A clean hand-over: every slot saved and its offsets committed before the next owner reads them."""
        numbers = {tp.partition for tp in partitions}
        self.codec.flush()
        for agent in self.agents:
            agent.states.save(numbers)
        self._commit(asynchronous=False)
        self._forget(numbers)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group moved on without us (a long stall): another worker may already be writing these states."""
        numbers = {tp.partition for tp in partitions}
        log.warning("agents: partitions %s lost to the group; their unsaved records are read again", sorted(numbers))
        self._forget(numbers)

    def _forget(self, partitions: set[int]) -> None:
        for agent in self.agents:
            agent.states.revoke(partitions)
        self.assigned = frozenset()
        self._committed.clear()
        self._read.clear()
