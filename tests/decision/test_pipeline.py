"""The steps chained in one loop, as replay will run them, on the SYNTHETIC wick scenario (training/scenario.py):
the real captures hold no liquidation burst, and only the scenario's model sees an edge worth an order."""

from __future__ import annotations

import pickle
from functools import cache

from decision.features import FeatureEngine
from decision.pipeline import DecideStep, ExecuteStep, PredictStep
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
    """The tops of book pickle as rows (a snapshot is faster so): restored, every symbol's history is the same."""
    decide = replay()[2]
    restored: DecideStep = pickle.loads(pickle.dumps(decide, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored.books.keys() == decide.books.keys() and decide.books
    for key, book in decide.books.items():
        assert list(restored.books[key].tops) == list(book.tops) and list(restored.books[key].times) == list(book.times)
        assert all(isinstance(top, TopOfBook) for top in restored.books[key].tops)
    assert restored == decide


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
