"""Which agents of a worker run as one chain, and the order a chain hands a record to its members.

The records are SYNTHETIC stand-ins: a chain routes by schema and never looks inside a record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import pytest

from agents.chain import Chain, Compiled, Step, chains
from agents.steps import DECIDE_INPUTS, EXECUTE_INPUTS, FEATURE_INPUTS
from liqbot.errors import LiqbotError
from schemas.records import AvroRecord

TOPIC = {"Liq": "market.liquidations", "Top": "market.top_of_book", "Vec": "features", "Pred": "predictions",
         "Intent": "orders.intents", "Fill": "orders.events"}

IO = {
    "features": (FEATURE_INPUTS, ("features",)),
    "predict": (("features",), ("predictions",)),
    "decide": (DECIDE_INPUTS, ("orders.intents", "orders.cancels")),
    "execute": (EXECUTE_INPUTS, ("orders.events", "positions")),
}


@dataclass(frozen=True)
class Rec:
    SCHEMA: ClassVar[str] = ""
    n: int


def kind(schema: str) -> type[Rec]:
    """A record kind the chain routes by `schema` (see TOPIC)."""
    return dataclass(frozen=True)(type(schema, (Rec,), {"SCHEMA": schema}))


Liq, Top, Vec, Pred, Intent, Fill = map(kind, ("Liq", "Top", "Vec", "Pred", "Intent", "Fill"))


MAKES: dict[str, dict[type[Rec], type[Rec]]] = {"features": {Liq: Vec}, "predict": {Vec: Pred},
                                                "decide": {Pred: Intent}, "execute": {Intent: Fill}}


def topic_of(record: AvroRecord) -> str:
    return TOPIC[record.SCHEMA]


def step(name: str, log: list[tuple[str, str, int]] | None = None,
         makes: dict[type[Rec], type[Rec]] | None = None) -> Step[None]:
    """A step with the app's topics that logs what it is handed and makes the next record kind from its own."""
    inputs, outputs = IO[name]

    def handle(_: None, record: AvroRecord) -> Sequence[AvroRecord]:
        rec = cast(Rec, record)
        if log is not None:
            log.append((name, rec.SCHEMA, rec.n))
        made = (makes or MAKES[name]).get(type(rec))
        return [cast(AvroRecord, made(rec.n))] if made else []

    return Step(name, inputs, frozenset(outputs), lambda: None, f"{name}:1", handle, merge=True)


def names(steps: Sequence[str]) -> list[str]:
    return [chain.name for chain in chains([step(n) for n in steps], topic_of)]


@pytest.mark.parametrize(("chosen", "expected"), [
    (("features", "predict", "decide", "execute"), ["features-predict-decide-execute"]),
    (("features", "predict"), ["features-predict"]),
    (("predict", "decide"), ["predict-decide"]),
    (("features", "decide"), ["features", "decide"]),  # decide reads predictions, which features does not write
    (("features", "predict", "execute"), ["features-predict", "execute"]),
    (("execute",), ["execute"]),
])
def test_agents_that_feed_each_other_join_one_chain(chosen: tuple[str, ...], expected: list[str]) -> None:
    assert names(chosen) == expected


def test_a_chain_reads_from_the_broker_only_what_no_member_writes_in_the_members_tie_break_order() -> None:
    chain = chains([step(n) for n in ("features", "predict", "decide", "execute")], topic_of)[0]
    assert chain.inputs == (*FEATURE_INPUTS, "market.instruments", "market.funding")
    chain = chains([step(n) for n in ("features", "predict", "decide")], topic_of)[0]
    assert chain.inputs == (*FEATURE_INPUTS, "market.instruments", "orders.events", "positions")
    assert chain.version == "features:1+predict:1+decide:1"


def test_a_record_goes_to_its_readers_then_what_they_made_goes_on_and_fills_come_back_to_decide() -> None:
    log: list[tuple[str, str, int]] = []
    chain = chains([step(n, log) for n in ("features", "predict", "decide", "execute")], topic_of)[0]
    states: list[Any] = chain.new()
    out = chain.handle(states, cast(AvroRecord, Liq(7)))
    # decide folds the trigger in before the prediction it caused, as a replay of the history does
    assert log == [("features", "Liq", 7), ("decide", "Liq", 7), ("predict", "Vec", 7), ("decide", "Pred", 7),
                   ("execute", "Intent", 7), ("decide", "Fill", 7)]
    assert cast(list[Rec], out) == [Vec(7), Pred(7), Intent(7), Fill(7)]
    assert [s.applied for s in chain.steps] == [1, 1, 3, 1]
    log.clear()
    assert chain.handle(states, cast(AvroRecord, Top(8))) == []
    assert log == [("features", "Top", 8), ("decide", "Top", 8), ("execute", "Top", 8)]  # predict reads no market


def test_records_made_outside_an_input_reach_the_members_after_the_maker() -> None:
    log: list[tuple[str, str, int]] = []
    chain = chains([step(n, log) for n in ("decide", "execute")], topic_of)[0]
    out = chain.spread(chain.new(), [cast(AvroRecord, Intent(3))])  # a cancel from decide's dead-man timer, say
    assert cast(list[Rec], out) == [Intent(3), Fill(3)]
    assert log == [("execute", "Intent", 3), ("decide", "Fill", 3)]


def test_members_that_feed_each_other_without_end_are_stopped_with_the_record_named() -> None:
    chain = chains([step("decide", makes={Pred: Intent, Fill: Intent}), step("execute")], topic_of)[0]
    with pytest.raises(LiqbotError, match=r"chain decide-execute: Pred  caused over 10000 records"):
        chain.handle(chain.new(), cast(AvroRecord, Pred(1)))


def test_the_states_of_one_member_are_found_in_the_chain_slots() -> None:
    chain = Chain([step("features"), step("predict")], topic_of)
    slots = [["f0", "p0"], ["f1", "p1"]]
    assert chain.states_of("predict", slots) == ["p0", "p1"]
    assert chain.states_of("decide", slots) == []


def compiled_step(log: list[tuple[str, str, int]]) -> Step[Any]:
    """The features step with a batch path whose engine is its state and whose output at a point is a vector."""
    plain = step("features", log)
    return Step(plain.name, plain.inputs, plain.outputs, lambda: "engine", plain.version, plain.handle, merge=True,
                compiled=Compiled(lambda state: f"compiled {state}", lambda _, trigger, *__: cast(AvroRecord,
                                                                                             Vec(trigger))))


@pytest.mark.parametrize(("others", "folds"), [((), True), (("predict",), True), (("predict", "decide"), False)])
def test_the_core_folds_a_chain_only_when_no_later_member_reads_the_market(others: tuple[str, ...],
                                                                           folds: bool) -> None:
    chain = chains([compiled_step([]), *(step(n) for n in others)], topic_of)[0]
    assert (chain.compiled is not None) is folds  # decide reads liquidations and tops: they need the record path


def test_a_batch_fold_counts_for_its_step_and_hands_its_vectors_to_the_members_after_it() -> None:
    log: list[tuple[str, str, int]] = []
    chain = chains([compiled_step(log), step("predict", log)], topic_of)[0]
    states: list[Any] = chain.new()
    assert chain.engine(states) == "compiled engine"
    counts = {"market.liquidations": (2, 2, 0), "market.book": (5, 4, 1)}
    out = chain.folded([(states, 4, 0, ()), (states, 9, 0, ())], counts, 0.001)
    assert cast(list[Rec], out) == [Vec(4), Pred(4), Vec(9), Pred(9)]
    assert log == [("predict", "Vec", 4), ("predict", "Vec", 9)]  # the fold itself went through the core
    assert chain.steps[0].fed["market.book"] == 4
    assert [s.applied for s in chain.steps] == [6, 2]
    assert chain.steps[0].made == {"features": 2}
