"""The four agents' steps: the topics each reads and writes, its state and how a record reaches its logic.

The worker (`agents/app.py`) and the history replay (`streams/history/backtest.py`) both build their steps here
and join them with `agents.chain.chains`, so a backtest routes records between the steps exactly as a worker
running all four agents does. Nothing here does I/O; a worker adds its metrics, timers and topics' prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from liqbot_core import MarketEvent

from agents.chain import Compiled, Handler, Step
from decision.feature_spec import FeatureSpec
from decision.features import FeatureEngine
from decision.paper import PaperAccount, PaperConfig, PaperVenue
from decision.pipeline import DecideStep, DecisionHook, ExecuteStep, PredictStep
from decision.risk import AccountRisk
from decision.strategy import StrategyConfig
from schemas.records import AvroRecord, BookUpdate, FeatureVector, Liquidation, Ticker, TopOfBook, Trade

__all__ = ["DECIDE_INPUTS", "EXECUTE_INPUTS", "FEATURE_INPUTS", "Topic", "decide_step", "execute_step",
           "features_step", "predict_step"]

S = TypeVar("S")
Topic = Callable[[str], str]  # a registry topic name ("market.trades") to the name its records travel under

# In event-time tie-break order: a merge ranks a step's inputs (and a chain's) by their place here.
FEATURE_INPUTS = ("market.liquidations", "market.trades", "market.book", "market.top_of_book", "market.tickers")
DECIDE_INPUTS = ("predictions", "market.liquidations", "market.top_of_book", "market.instruments", "orders.events",
                 "positions")
EXECUTE_INPUTS = ("orders.intents", "orders.cancels", "market.trades", "market.top_of_book", "market.tickers",
                  "market.funding")
_MARKET = frozenset({Liquidation, Trade, TopOfBook, BookUpdate, Ticker, MarketEvent})  # records are final classes


def _as_is(name: str) -> str:
    return name


def features_step(spec: FeatureSpec | None = None, topic: Topic = _as_is) -> Step[FeatureEngine]:
    """Market records (or their bodies decoded straight into `MarketEvent`s) to a feature vector at every
    decision point."""
    spec_engine = FeatureEngine(spec)

    def handle(engine: FeatureEngine, record: AvroRecord | MarketEvent) -> Sequence[AvroRecord]:
        if type(record) in _MARKET:
            vector = engine.update(record)  # type: ignore[arg-type]  # narrowed by its type
            return [vector] if vector is not None else []
        return []

    def factory() -> FeatureEngine:
        return FeatureEngine(spec_engine.spec)

    # "2": the compiled engine's state; snapshots of the Python engine before it are not loaded
    return _step("features", FEATURE_INPUTS, ("features",), handle, factory=factory,
                 version=f"features:2:{spec_engine.fingerprint}", topic=topic, events=True,
                 compiled=Compiled(lambda engine: engine.compiled, FeatureEngine.decision_vector))


def predict_step(step: PredictStep, topic: Topic = _as_is) -> Step[None]:
    """Vectors at decision points to predictions of the model `step` serves (one model for every partition)."""
    def handle(_: None, record: AvroRecord) -> Sequence[AvroRecord]:
        return step.on_vector(record) if isinstance(record, FeatureVector) else []

    return _step("predict", ("features",), ("predictions",), handle, factory=lambda: None, version="predict:1",
                 topic=topic, merge=False)


def decide_step(config: StrategyConfig, starting_equity: float, on_decision: DecisionHook | None = None,
                topic: Topic = _as_is) -> Step[DecideStep]:
    """Predictions, the market and the venue's order events to intents and cancels; one risk account per state."""
    def hooked(step: DecideStep, record: AvroRecord) -> Sequence[AvroRecord]:
        return step.on_record(record, on_decision)

    handle: Handler[DecideStep] = DecideStep.on_record if on_decision is None else hooked  # one frame fewer unhooked

    def factory() -> DecideStep:
        return DecideStep(config, AccountRisk(starting_equity))

    # "3": each symbol's risk state is the core's `SymbolRisk` ("2": the books became the core's `TopsAsOf`; older
    # snapshots pickled Python classes this code no longer has)
    return _step("decide", DECIDE_INPUTS, ("orders.intents", "orders.cancels"), handle, factory=factory,
                 version="decide:3", topic=topic)


def execute_step(starting_equity: float, config: PaperConfig | None = None,
                 topic: Topic = _as_is) -> Step[ExecuteStep]:
    """Intents, cancels and the market through the paper venue, one paper account per state; the book topic too
    only with a queue model (the default execute agent does not read it)."""
    paper = config or PaperConfig()
    inputs = EXECUTE_INPUTS if not paper.queue.on else (*EXECUTE_INPUTS[:3], "market.book", *EXECUTE_INPUTS[3:])

    def factory() -> ExecuteStep:
        return ExecuteStep(PaperVenue(paper, PaperAccount(starting_equity)))

    # "2": the venue's state holds what is in flight and its book (snapshots of "1" lack them)
    return _step("execute", inputs, ("orders.events", "positions"), ExecuteStep.on_record, factory=factory,
                 version="execute:2", topic=topic)


def _step(name: str, inputs: Sequence[str], outputs: Sequence[str], handle: Handler[S], *, factory: Callable[[], S],
          version: str, topic: Topic, merge: bool = True, events: bool = False,
          compiled: Compiled[S] | None = None) -> Step[S]:
    """`merge`: the step is fed its inputs in event-time order (streams/merge.py); `events`: it takes them as
    `MarketEvent`s too (decoded without record objects where no other step reads them); `compiled`: the core can
    fold a consumed batch of its inputs in one call."""
    topics = tuple(map(topic, inputs))
    return Step(name, topics, frozenset(map(topic, outputs)), factory, version, handle, merge,
                frozenset(topics) if events else frozenset(), compiled)
