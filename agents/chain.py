"""Agents of one worker that feed each other run as one chain, as a Kafka Streams sub-topology does.

The features agent's vector goes straight to predict, the prediction to decide, the intent to execute and its
order events back to decide, in process, and all of them still go to their topics (the history, and workers
that run these agents apart with `--agents`). A hop through the broker costs ~1 ms at p50 and 3-12 ms at p99
on this machine (`liqbot bench e2e`): three of them were the whole latency budget. A chain reads what its
members read from outside it and keeps their states as one per partition, snapshotted together, so the states
always hold the same offsets and a restart folds the same records into all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from liqbot.errors import LiqbotError
from schemas.records import AvroRecord
from streams.metrics import HotHistogramChild

__all__ = ["Chain", "Compiled", "Handler", "Point", "Step", "chains"]

S = TypeVar("S")
Handler = Callable[[S, AvroRecord], Sequence[AvroRecord]]  # a step's state and a record to the records it causes
Point = tuple[Any, Any, int, tuple[float, ...]]  # a batch fold's decision point: state, trigger, watermark, values

_MAX_CAUSED = 10_000  # records one input may cause in a chain: more means members that feed each other forever
_UNTIMED = 63  # a step's n-th record of a topic is timed when n & _UNTIMED == 0: one in 64 (two clock reads)


@dataclass(frozen=True)
class Compiled(Generic[S]):
    """A step whose whole work on its inputs the core can do a consumed batch at a time (`liqbot_core.MarketFold`):
    its state's compiled engine, and the record it makes at a decision point."""

    engine: Callable[[S], Any]
    output: Callable[[S, Any, int, tuple[float, ...]], AvroRecord]


@dataclass
class Step(Generic[S]):
    """One agent's logic: the topics it reads (in event-time tie-break order) and writes, its state per
    partition, and a record to the records it causes."""

    name: str
    inputs: tuple[str, ...]
    outputs: frozenset[str]
    factory: Callable[[], S]
    version: str  # state written by other code (another feature spec, say) is not loaded
    handle: Handler[S]
    merge: bool  # fold its inputs in event-time order across topics (streams/merge.py)
    events: frozenset[str] = frozenset()  # inputs it also takes as `liqbot_core.MarketEvent`s (no record object)
    compiled: Compiled[S] | None = None  # its batch path, when the core can do its whole work
    timer: HotHistogramChild | None = None  # the process-time histogram of the sampled records (agents/metrics.py)
    fed: dict[str, int] = field(init=False)  # records handed to it, by topic
    made: dict[str, int] = field(default_factory=dict)  # records it made, by topic
    errors: int = 0  # inputs it could not be given: they failed to decode and were dead-lettered

    def __post_init__(self) -> None:
        self.fed = dict.fromkeys(self.inputs, 0)

    @property
    def applied(self) -> int:
        """Records handed to it (status.json; `liqbot bench agents`)."""
        return sum(self.fed.values())


@dataclass
class Chain:
    """Steps fed in process: a record goes to each member that reads its topic, in member order, then what
    they made goes the same way, breadth first, until nothing more comes (execute's fills go back to decide)."""

    steps: list[Step[Any]]
    topic_of: Callable[[AvroRecord], str] = field(repr=False)  # the topic that carries a record's schema
    # topic -> the members that read it (index, step), in member order (members are given once, when it is made)
    _readers: dict[str, tuple[tuple[int, Step[Any]], ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        readers: dict[str, list[tuple[int, Step[Any]]]] = {}
        for i, step in enumerate(self.steps):
            for topic in step.inputs:
                readers.setdefault(topic, []).append((i, step))
        self._readers = {topic: tuple(members) for topic, members in readers.items()}

    @property
    def name(self) -> str:
        return "-".join(step.name for step in self.steps)  # names its changelog topic: no '+'

    @property
    def writes(self) -> frozenset[str]:
        return frozenset().union(*(step.outputs for step in self.steps))

    @property
    def inputs(self) -> tuple[str, ...]:
        """The topics read from the broker: what the members read and no member writes."""
        made = self.writes
        return tuple(dict.fromkeys(t for step in self.steps for t in step.inputs if t not in made))

    @property
    def events(self) -> frozenset[str]:
        """The inputs every member that reads them takes as `MarketEvent`s: read without building records."""
        return frozenset(t for t in self.inputs if all(t in s.events for s in self.steps if t in s.inputs))

    @property
    def version(self) -> str:
        return "+".join(step.version for step in self.steps)

    @property
    def merge(self) -> bool:
        return any(step.merge for step in self.steps)

    @property
    def compiled(self) -> Compiled[Any] | None:
        """The first member's batch path, when it has one and no other member reads its inputs (features, with
        predict after it: the core folds the market, predict takes the vectors)."""
        first, others = self.steps[0], self.steps[1:]
        if first.compiled is None or any(set(first.inputs) & set(step.inputs) for step in others):
            return None
        return first.compiled

    def new(self) -> list[Any]:
        return [step.factory() for step in self.steps]

    def handle(self, states: list[Any], record: AvroRecord) -> list[AvroRecord]:
        """Every record the chain makes from `record`, each also handed to the members that read its topic."""
        out: list[AvroRecord] = []
        given, handed = record, 0  # breadth first: `out` is the queue too, each record handed on in turn
        while True:
            topic = self.topic_of(given)
            for i, step in self._readers.get(topic, ()):
                fed = step.fed[topic] = step.fed[topic] + 1
                made = step.handle(states[i], given) if fed & _UNTIMED else _timed(step, states[i], given)
                if made:
                    self._count(step, made)
                    out.extend(made)
            if len(out) > _MAX_CAUSED:
                raise LiqbotError(f"chain {self.name}: {record.SCHEMA} {getattr(record, 'event_id', '')} caused "
                                  f"over {_MAX_CAUSED} records; its members feed each other without end")
            if handed == len(out):
                return out
            given, handed = out[handed], handed + 1

    def engine(self, states: list[Any]) -> Any:
        """The compiled member's engine in one slot's states (`compiled`)."""
        step = self.steps[0]
        assert step.compiled is not None
        return step.compiled.engine(states[0])

    def folded(self, points: Sequence[Point], counts: dict[str, tuple[int, int, int]],
               seconds: float) -> list[AvroRecord]:
        """What a batch fold of the compiled first member did: its counts (dead letters: `reject`), the records of
        its decision points and what the other members made of them."""
        step = self.steps[0]
        assert step.compiled is not None
        for topic, (_, fed, _) in counts.items():
            step.fed[topic] += fed
        made = [(states, step.compiled.output(states[0], *point)) for states, *point in points]
        self._count(step, [record for _, record in made])
        records = sum(fed for _, fed, _ in counts.values())
        if step.timer is not None and records:
            step.timer.observe(seconds / records)  # one sample a batch: its mean time a record
        # then through the other members, as `handle` would have sent them (the first does not read its outputs)
        return [out for states, record in made for out in (record, *self.handle(states, record))]

    def spread(self, states: list[Any], made: Sequence[AvroRecord], *, maker: str | None = None) -> list[AvroRecord]:
        """Records a member (`maker`, counted) made outside any input (a timer's), and every record they cause."""
        for step in self.steps:
            if step.name == maker:
                self._count(step, made)
        out = list(made)
        for record in made:
            out.extend(self.handle(states, record))
        return out

    def reject(self, topic: str) -> None:
        """An input of `topic` failed to decode (dead-lettered): an error of each member that reads it."""
        for step in self.steps:
            if topic in step.inputs:
                step.errors += 1

    def _count(self, step: Step[Any], made: Sequence[AvroRecord]) -> None:
        for record in made:
            topic = self.topic_of(record)
            step.made[topic] = step.made.get(topic, 0) + 1

    def states_of(self, name: str, slots: Sequence[list[Any]]) -> list[Any]:
        """The states of step `name` in these slot states (none when it is not a member)."""
        index = next((i for i, step in enumerate(self.steps) if step.name == name), None)
        return [] if index is None else [state[index] for state in slots]


def _timed(step: Step[S], state: S, record: AvroRecord) -> Sequence[AvroRecord]:
    if step.timer is None:
        return step.handle(state, record)
    started = time.perf_counter()
    made = step.handle(state, record)
    step.timer.observe(time.perf_counter() - started)
    return made


def chains(steps: Sequence[Step[Any]], topic_of: Callable[[AvroRecord], str]) -> list[Chain]:
    """Consecutive steps joined while the next one reads what the chain writes."""
    groups: list[list[Step[Any]]] = []
    for step in steps:
        if groups and set(step.inputs) & {topic for member in groups[-1] for topic in member.outputs}:
            groups[-1].append(step)
        else:
            groups.append([step])
    return [Chain(group, topic_of) for group in groups]
