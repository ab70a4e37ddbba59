"""The steps chained in one loop, as replay will run them, on the SYNTHETIC wick scenario (training/scenario.py):
the real captures hold no liquidation burst, and only the scenario's model sees an edge worth an order."""

from __future__ import annotations

import pickle
from functools import cache

from decision.features import FeatureEngine
from decision.pipeline import _TOPS_KEPT, DecideStep, ExecuteStep, PredictStep
from decision.risk import AccountRisk
from decision.scoring import Scorer
from decision.strategy import StrategyConfig
from schemas.records import AvroRecord, Instrument, OrderCancel, OrderEvent, OrderIntent, Prediction, TopOfBook
from training.registry import SCENARIO_REGISTRY, ModelRegistry
from training.scenario import Scenario, WickScenario, generate


@cache
def scenario() -> Scenario:
    return generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900, bursts=4))


def replay(delay_predictions: int = 0) -> tuple[list[Prediction], list[AvroRecord], DecideStep]:
    """Features -> predictions -> decisions -> paper venue, in event order; predictions reach decide
    `delay_predictions` market records late (as in the agents, where they take a detour through two topics)."""
    scorer = Scorer(ModelRegistry(SCENARIO_REGISTRY).load())
    engine, predict = FeatureEngine(), PredictStep(lambda: scorer)
    decide, execute = DecideStep(StrategyConfig(), AccountRisk(100_000.0)), ExecuteStep()
    predictions: list[Prediction] = []
    out: list[AvroRecord] = []
    pending: list[tuple[int, Prediction]] = []
    for n, record in enumerate(scenario().records):
        vector = None if isinstance(record, Instrument) else engine.update(record)
        if vector is not None:
            for prediction in predict.on_vector(vector):
                predictions.append(prediction)
                pending.append((n + delay_predictions, prediction))
        for item in [record, *[p for due, p in pending if due <= n]]:
            for made in decide.on_record(item):
                out.append(made)
                for result in execute.on_record(made):
                    out.append(result)
                    decide.on_record(result)
        pending = [(due, p) for due, p in pending if due > n]
        for result in execute.on_record(record):
            out.append(result)
            decide.on_record(result)
    return predictions, out, decide


def test_a_replay_places_orders_and_is_repeatable() -> None:
    predictions, out, decide = replay()
    intents = [r for r in out if isinstance(r, OrderIntent)]
    assert intents and len(predictions) > len(intents)
    assert decide.counts["intent"] == len(intents)
    assert {e.status for e in out if isinstance(e, OrderEvent)} >= {"ACCEPTED"}
    assert replay()[1] == out


def test_decide_state_restored_from_a_snapshot_holds_the_same_books() -> None:
    """Tops are kept as columns (a snapshot is faster so): restored, every symbol gives, as of each time it
    kept, the very top of book the market sent."""
    decide = replay()[2]
    restored: DecideStep = pickle.loads(pickle.dumps(decide, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored == decide and decide.books
    sent: dict[tuple[str, str], list[TopOfBook]] = {}
    for record in scenario().records:
        if isinstance(record, TopOfBook):
            sent.setdefault((record.venue, record.symbol), []).append(record)
    for key, book in restored.books.items():
        kept = sent[key][-len(book):]
        newest = {top.ts_event_ns: top for top in kept}  # tops that share a time: the last one stands
        assert all(book.as_of(ts) == top for ts, top in newest.items())
        assert book.as_of(kept[0].ts_event_ns - 1) is None


def test_a_symbol_keeps_at_least_its_newest_tops_and_trims_the_rest_in_bulk() -> None:
    tops = [r for r in generate(WickScenario(seed=3, symbols=("WICKUSDT",), duration_s=2000, bursts=1)).records
            if isinstance(r, TopOfBook)]
    assert len(tops) > 2 * _TOPS_KEPT
    decide = DecideStep(StrategyConfig(), AccountRisk(100_000.0))
    sizes = []
    for top in tops:
        decide.on_record(top)
        sizes.append(len(decide.books[(top.venue, top.symbol)]))
    assert min(sizes[_TOPS_KEPT:]) == _TOPS_KEPT and max(sizes) == 2 * _TOPS_KEPT - 1
    book = decide.books[(tops[0].venue, tops[0].symbol)]
    assert book.as_of(tops[-1].ts_event_ns) == tops[-1]
    assert book.as_of(tops[-sizes[-1]].ts_event_ns - 1) is None  # older than what it kept: unknown, not wrong


def test_a_late_prediction_gets_the_book_of_its_trigger_time() -> None:
    """Predictions that arrive 50 records late decide on the same top of book: the same intents."""
    on_time = [r for r in replay()[1] if isinstance(r, OrderIntent)]
    late = [r for r in replay(delay_predictions=50)[1] if isinstance(r, OrderIntent)]
    assert [(i.client_order_id, i.price, i.size) for i in late] == [(i.client_order_id, i.price, i.size)
                                                                    for i in on_time]


def test_a_prediction_waits_for_its_trigger_and_a_repeat_is_not_decided_again() -> None:
    predictions, _, _ = replay()
    records = scenario().records
    decide = DecideStep(StrategyConfig(), AccountRisk(100_000.0))
    first = predictions[0]
    trigger_at = next(i for i, r in enumerate(records) if getattr(r, "event_id", None) == first.event_id)
    for record in records[:trigger_at]:
        decide.on_record(record)
    assert decide.on_record(first) == [] and first.event_id in decide.waiting  # no trigger yet: wait
    decided = decide.on_record(records[trigger_at])
    assert first.event_id not in decide.waiting and decide.counts["intent"] == len(decided) == 1
    assert decide.on_record(first) == [] and decide.counts["duplicate"] == 1, decided


def test_the_dead_man_cancels_only_symbols_with_resting_orders_and_once_per_silence() -> None:
    _, out, decide = replay()
    live = [s for s in decide.symbols.values() if s.orders.exposure().live_orders]
    cancels = decide.on_clock(60 * 1_000_000_000)
    assert all(isinstance(c, OrderCancel) for c in cancels)
    assert sorted(c.symbol for c in cancels) == sorted(s.symbol for s in live)
    assert decide.on_clock(120 * 1_000_000_000) == []  # the same silence: already cancelled
    assert not any(isinstance(r, TopOfBook) for r in out)
