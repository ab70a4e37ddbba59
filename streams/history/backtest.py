"""History replay: the market history in ClickHouse through the live agents' steps, in their event-time order.

The steps are the worker's own (`agents/steps.py`), joined into one chain as a worker running all four agents joins
them (`agents.chain`): the compiled feature engine, the served model, decide and the paper venue, each record
handed to the members that read its topic and what they make handed on, breadth first. As live, one chain state
per Kafka partition (the history keeps each row's partition), each fed its partition's topics in the order of the
agents' merge (`streams.merge.ordered`: event time held per source, then the chain's topic rank, then offset).
No wall clock and no Kafka: the dead-man and kill-switch timers, which run on wall time, do not run here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from clickhouse_connect.driver.client import Client

from agents.chain import Chain, Step, chains
from agents.steps import decide_step, execute_step, features_step, predict_step
from decision.feature_spec import FeatureSpec
from decision.paper import PaperConfig, PaperVenue
from decision.pipeline import PredictStep
from decision.strategy import StrategyConfig
from schemas.records import AvroRecord, FeatureVector, OrderCancel, OrderEvent, OrderIntent, Position, Prediction
from streams.history.columns import DECIMAL_FIELDS
from streams.history.reader import HistoryRange, HistoryReader, Source, decimal_text
from streams.merge import ordered
from streams.topics import TOPICS
from training.serving import ServedModel

__all__ = ["BacktestConfig", "History", "Outputs", "Progress", "Replay", "canonical", "read_history", "replay",
           "replay_history", "result_hash"]

log = logging.getLogger(__name__)

_TOPIC_OF = {spec.schema: spec.name for spec in TOPICS}
_PROGRESS_EVERY = 4096  # records between looks at the wall clock for a progress line
FILLED = frozenset({"FILLED", "PARTIALLY_FILLED"})


@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """Everything that shapes a run's results besides its data and model; `config_hash` names it."""

    span: HistoryRange
    starting_equity: float = 100_000.0  # of each partition's accounts, as each live partition state holds its own
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    spec: FeatureSpec = field(default_factory=FeatureSpec)
    batch_rows: int = 100_000  # rows per ClickHouse read; changes memory, never results (tested)

    def config_hash(self) -> str:
        shaping = {"starting_equity": self.starting_equity, "strategy": asdict(self.strategy),
                   "paper": self.paper.shaping(), "feature_spec": self.spec.fingerprint()}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=repr).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """After a position: its partition's paper account, and the run's net PnL over every partition."""

    ts_event_ns: int
    partition: int
    venue: str
    symbol: str
    account_equity: float
    net_pnl: float


@dataclass
class Outputs:
    """What the chain made, in the order it made it, with the partition whose state made each."""

    vectors: list[FeatureVector] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    intents: list[tuple[int, OrderIntent]] = field(default_factory=list)
    cancels: list[tuple[int, OrderCancel]] = field(default_factory=list)
    events: list[tuple[int, OrderEvent]] = field(default_factory=list)
    positions: list[tuple[int, Position]] = field(default_factory=list)
    equity: list[EquityPoint] = field(default_factory=list)
    _pnl: dict[int, float] = field(default_factory=dict)  # partition -> its account's net PnL

    def add(self, partition: int, made: Iterable[AvroRecord], starting_equity: float) -> None:
        for record in made:
            if isinstance(record, FeatureVector):
                self.vectors.append(record)
            elif isinstance(record, Prediction):
                self.predictions.append(record)
            elif isinstance(record, OrderIntent):
                self.intents.append((partition, record))
            elif isinstance(record, OrderCancel):
                self.cancels.append((partition, record))
            elif isinstance(record, OrderEvent):
                self.events.append((partition, record))
            elif isinstance(record, Position):
                self.positions.append((partition, record))
                self._pnl[partition] = record.equity - starting_equity
                self.equity.append(EquityPoint(record.ts_event_ns, partition, record.venue, record.symbol,
                                               record.equity, sum(self._pnl.values())))

    @property
    def fills(self) -> list[OrderEvent]:
        return [event for _, event in self.events if event.status in FILLED]


@dataclass(frozen=True, slots=True)
class Progress:
    records: int
    total: int
    ts_event_ns: int
    intents: int
    wall_s: float


@dataclass
class Replay:
    """A finished run: what was read, what the steps made, the hashes that compare runs, and the money."""

    config: BacktestConfig
    model_version: str
    rows: dict[str, int]  # rows read per table
    batches: dict[str, int]  # ClickHouse reads per table
    input_hash: str
    outputs: Outputs
    realised_pnl: float
    fees: float
    funding: float
    net_pnl: float
    wall_s: float

    @property
    def records(self) -> int:
        return sum(self.rows.values())

    @property
    def result_hash(self) -> str:
        return result_hash([i for _, i in self.outputs.intents], [e for _, e in self.outputs.events])


def _normal(name: str, value: Any) -> Any:
    if isinstance(value, str) and name in DECIMAL_FIELDS:
        return decimal_text(Decimal(value))
    if isinstance(value, list):
        return [{k: _normal(k, v) for k, v in item.items()} if isinstance(item, dict) else item for item in value]
    return value


def canonical(record: AvroRecord) -> bytes:
    """A record's content, independent of how a store prints it: decimals as their shortest exact text, floats
    by their exact repr, fields in schema order."""
    datum = {name: _normal(name, value) for name, value in record.to_avro().items()}
    return json.dumps([record.SCHEMA, datum], separators=(",", ":")).encode()


def result_hash(intents: Sequence[OrderIntent], events: Sequence[OrderEvent]) -> str:
    """sha256 of the run's intents and order events (fills are among them), each canonical, in sorted order: the
    same records give the same hash whether read from memory, a run's tables or (later) the live topics."""
    digest = hashlib.sha256()
    for line in sorted(canonical(r) for r in [*intents, *events]):
        digest.update(line + b"\n")
    return digest.hexdigest()


def _chain(config: BacktestConfig, served: ServedModel | None) -> Chain:
    """The worker's four steps, joined as a worker joins them: one chain (without a model: only to name its inputs,
    never to run)."""
    scorer = (lambda: served.scorer) if served is not None else _no_scorer
    steps: list[Step[Any]] = [
        features_step(config.spec), predict_step(PredictStep(scorer)),
        decide_step(config.strategy, config.starting_equity), execute_step(config.starting_equity, config.paper)]
    (chain,) = chains(steps, lambda record: _TOPIC_OF[record.SCHEMA])
    return chain


def _no_scorer() -> NoReturn:
    raise AssertionError("a chain built to name its inputs was run")


@dataclass
class _Loop:
    """The replay's state: one chain state per partition, what it made, and the input's count and hash."""

    chain: Chain
    starting_equity: float
    states: dict[int, list[Any]] = field(default_factory=dict)
    outputs: Outputs = field(default_factory=Outputs)
    rows: dict[str, int] = field(default_factory=dict)

    def state(self, partition: int) -> list[Any]:
        state = self.states.get(partition)
        if state is None:
            state = self.states[partition] = self.chain.new()
        return state

    def count(self, table: str, rows: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows

    def venues(self) -> list[PaperVenue]:
        return [step.venue for step in self.chain.states_of("execute", list(self.states.values()))]


@dataclass(frozen=True)
class History:
    """A range's records read into memory (`read_history`): each source with its records in offset order, as
    (event time ns, offset, record), and the ClickHouse reads that took. `replay_history` runs them."""

    sources: list[tuple[Source, list[tuple[int, int, AvroRecord]]]]
    batches: dict[str, int]
    input_hash: str  # the reader's (`HistoryReader.input_hash`): of the rows as ClickHouse holds them

    @property
    def records(self) -> int:
        return sum(len(records) for _, records in self.sources)


def _open(client: Client, config: BacktestConfig, inputs: Sequence[str]) -> tuple[HistoryReader, list[Source]]:
    """The range's reader and sources; raises, saying what to do, when it holds none of the symbols' records."""
    reader = HistoryReader(client, config.span, inputs, config.batch_rows)
    sources = reader.sources()
    missing = [s for s in config.span.symbols if s not in reader.symbols_found]
    if missing:
        reader.refuse_missing(missing)
        log.warning("backtest: no market records of %s in the range", ", ".join(missing))
    return reader, sources


def replay(client: Client, config: BacktestConfig, served: ServedModel,
           on_progress: Callable[[Progress], None] | None = None, progress_every_s: float = 1.0) -> Replay:
    """Runs the history of `config.span` through the live steps, read a batch at a time as it goes (bounded
    memory); raises, saying what to do, when it holds none."""
    started = time.perf_counter()
    loop = _Loop(_chain(config, served), config.starting_equity)
    reader, sources = _open(client, config, loop.chain.inputs)
    _run(loop, [(s, reader.records(s)) for s in sources], started=started, on_progress=on_progress,
         progress_every_s=progress_every_s)
    return _result(loop, config, served, reader.batches, input_hash=reader.input_hash(),
                   started=started)


def read_history(client: Client, config: BacktestConfig) -> History:
    """Every record `replay` would read for `config.span`, read into memory first (its memory is the range's)."""
    reader, sources = _open(client, config, _chain(config, None).inputs)
    read = [(s, list(reader.records(s))) for s in sources]
    return History(read, dict(reader.batches), reader.input_hash())


def replay_history(history: History, config: BacktestConfig, served: ServedModel,
                   on_progress: Callable[[Progress], None] | None = None, progress_every_s: float = 1.0) -> Replay:
    """`replay` from records already in memory (`read_history`): the same steps, order and results, no reads."""
    started = time.perf_counter()
    loop = _Loop(_chain(config, served), config.starting_equity)
    _run(loop, [(s, iter(records)) for s, records in history.sources], started=started, on_progress=on_progress,
         progress_every_s=progress_every_s)
    return _result(loop, config, served, history.batches, input_hash=history.input_hash,
                   started=started)


def _run(loop: _Loop, sources: list[tuple[Source, Iterator[tuple[int, int, AvroRecord]]]], *, started: float,
         on_progress: Callable[[Progress], None] | None, progress_every_s: float) -> None:
    total, said = sum(s.rows for s, _ in sources), started
    # by source rank: its partition's chain state (a state is made when its partition's first record comes)
    partitions = [s.partition for s, _ in sources]
    states: list[list[Any] | None] = [None] * len(sources)
    read = [0] * len(sources)
    handle, add, equity = loop.chain.handle, loop.outputs.add, loop.starting_equity
    for n, (rank, ts_ns, record) in enumerate(ordered([records for _, records in sources]), 1):
        state = states[rank]
        if state is None:
            state = states[rank] = loop.state(partitions[rank])
        read[rank] += 1
        made = handle(state, record)
        if made:
            add(partitions[rank], made, equity)
        if on_progress is not None and n % _PROGRESS_EVERY == 0 and time.perf_counter() - said >= progress_every_s:
            said = time.perf_counter()
            on_progress(Progress(n, total, ts_ns, len(loop.outputs.intents), said - started))
    for (source, _), rows in zip(sources, read, strict=True):
        if rows:
            loop.count(source.spec.table, rows)


def _result(loop: _Loop, config: BacktestConfig, served: ServedModel, batches: dict[str, int], *, input_hash: str,
            started: float) -> Replay:
    venues = loop.venues()
    symbols = [s for venue in venues for s in venue.symbols.values()]
    return Replay(config=config, model_version=served.version, rows=dict(sorted(loop.rows.items())),
                  batches=dict(sorted(batches.items())), input_hash=input_hash,
                  outputs=loop.outputs, realised_pnl=sum(s.realised_pnl for s in symbols),
                  fees=sum(s.fees_paid for s in symbols), funding=sum(s.funding_paid for s in symbols),
                  net_pnl=sum(sum(venue.account.pnl.values()) for venue in venues),
                  wall_s=time.perf_counter() - started)
