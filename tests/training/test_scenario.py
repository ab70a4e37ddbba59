"""The SYNTHETIC liquidation-wick scenario (training/scenario.py) and the model fitted on it.

Every record here is made by the seeded generator (venue "synthetic", event ids "synthetic-..."), because no real
capture holds a liquidation burst. It exists to drive the order path, features -> model -> decide -> paper venue,
end to end; the counts below are sanity checks of that plumbing, never a claim about strategy performance.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from decision.arms import entry_side
from decision.feature_spec import FeatureSpec
from decision.features import FeatureEngine
from decision.ledger import Outcome
from decision.paper import PaperAccount, PaperConfig, PaperVenue, VenueRecord
from decision.risk import AccountRisk
from decision.scoring import Scorer, required_mask, screen
from decision.strategy import StrategyConfig, SymbolStrategy, decide
from liqbot.cli import main
from liqbot.errors import LiqbotError
from schemas.records import (
    FeatureVector,
    Instrument,
    Liquidation,
    OrderEvent,
    OrderIntent,
    Prediction,
    TopOfBook,
    Trade,
)
from training.dataset import AtLiquidations, decision_points
from training.registry import DEFAULT_REGISTRY, SCENARIO_REGISTRY, ModelRegistry
from training.scenario import VENUE, Burst, Scenario, ScenarioRecord, WickScenario, generate

MS, S = 1_000_000, 1_000_000_000
SMALL = WickScenario(seed=5, duration_s=600, bursts=2)  # fast checks of the generator itself
HELD_OUT = WickScenario(seed=2, symbols=("WICKUSDT", "SPIKEUSDT"), duration_s=3_600, bursts=20)  # not trained on
CONFIG = StrategyConfig()
LIMITS = CONFIG.risk
EQUITY = 100_000.0
FEES_BPS = 7.5  # maker 2 bps in, taker 5.5 bps out


def test_the_scenario_is_deterministic_per_seed() -> None:
    first, again = generate.__wrapped__(SMALL), generate.__wrapped__(WickScenario(seed=5, duration_s=600, bursts=2))
    assert first is not again and first.records == again.records and first.bursts == again.bursts
    assert first.sha256() == again.sha256()
    other = generate.__wrapped__(WickScenario(seed=6, duration_s=600, bursts=2))
    assert other.sha256() != first.sha256() and other.bursts != first.bursts
    kinds = Counter(type(r).__name__ for r in first.records)
    # 600 s: a book update (and its top of book) every 200 ms, a ticker every second, one listing
    assert (kinds["BookUpdate"], kinds["TopOfBook"], kinds["Ticker"], kinds["Instrument"]) == (3000, 3000, 600, 1)
    assert kinds["Liquidation"] == sum(b.liquidations for b in first.bursts) == 22
    assert [b.liquidated for b in first.bursts] == ["SHORT", "LONG"]
    assert kinds["Trade"] == 2619


def test_every_record_is_synthetic_in_event_time_order_with_a_small_feed_latency() -> None:
    scenario = generate(SMALL)
    records = scenario.records
    assert isinstance(records[0], Instrument) and records[0].status == "Trading"
    assert all(r.venue == VENUE == "synthetic" and r.symbol == "WICKUSDT" for r in records)
    assert all(r.event_id.startswith("synthetic-WICKUSDT-") for r in records)
    assert len({(r.SCHEMA, r.event_id) for r in records}) == len(records)
    times = [r.ts_event_ns for r in records]
    assert times == sorted(times) and SMALL.start_ns == times[0] and times[-1] < SMALL.end_ns
    latency_ms = [(r.ts_recv_ns - r.ts_exchange_ns) / MS for r in records]
    assert min(latency_ms) >= 7.5 and max(latency_ms) <= 22.5  # feed latency 15 ms +- 50 %
    assert all(0 <= r.ts_exchange_ns - r.ts_event_ns < 500 * MS for r in records)  # liquidations: the next 500 ms push


def test_each_burst_is_one_sided_liquidations_then_a_wick_through_the_book_that_partly_reverts() -> None:
    scenario = generate(HELD_OUT)
    tops = _tops(scenario)
    assert len(scenario.bursts) == 20 and {b.symbol for b in scenario.bursts} == {"WICKUSDT", "SPIKEUSDT"}
    assert Counter(b.liquidated for b in scenario.bursts) == {"LONG": 8, "SHORT": 12}
    for burst in scenario.bursts:
        liqs = [r for r in scenario.records if isinstance(r, Liquidation) and r.symbol == burst.symbol
                and burst.ts_ns <= r.ts_event_ns <= burst.ts_ns + burst.push_ns]
        assert len(liqs) == burst.liquidations and {r.position_side for r in liqs} == {burst.liquidated}
        before = _mid(tops, burst.symbol, burst.ts_ns)
        # the book's mid follows the built-in wick, give or take 4 sd of the random walk: to the depth at the end of
        # the push, and (1 - reversion) of it five reversion time constants later
        for after_ns, share in ((burst.push_ns, 1.0), (burst.push_ns + 5 * burst.revert_ns, 1 - burst.reversion)):
            ts_ns, mid = _top_at(tops, burst.symbol, burst.ts_ns + after_ns)
            assert _bps(mid, before) == pytest.approx(_bps(math.exp(burst.offset(ts_ns)), 1.0),
                                                      abs=_walk_bps(ts_ns - burst.ts_ns))
            assert burst.offset(ts_ns) * 1e4 * burst.direction == pytest.approx(burst.depth_bps * share, rel=0.1)
        sweep = [r for r in scenario.records if isinstance(r, Trade) and r.symbol == burst.symbol
                 and burst.ts_ns <= r.ts_event_ns < burst.ts_ns + burst.push_ns]
        with_push = sum(r.taker_side == ("SELL" if burst.direction < 0 else "BUY") for r in sweep)
        assert with_push / len(sweep) > 0.6, burst  # forced orders and takers run in the wick's direction


def test_the_records_pass_through_the_live_feature_engine_and_its_book_matches_the_top_of_book() -> None:
    scenario = generate(SMALL)
    engine, required = FeatureEngine(), required_mask(FeatureSpec())
    vectors: list[FeatureVector] = []
    checked = 0
    for record in scenario.market_records():
        vector = engine.update(record)
        if vector is not None:
            vectors.append(vector)
        if isinstance(record, TopOfBook):  # rebuilt from the snapshot and every delta since
            book = engine.book(VENUE, record.symbol)
            assert book is not None
            best = book.best()
            assert best is not None and (best[0].price, best[0].size, best[1].price, best[1].size) == \
                   (record.bid_price, record.bid_size, record.ask_price, record.ask_size)
            checked += 1
    assert engine.counts == {"applied": len(scenario.records) - 1} and checked == 3000
    assert len(vectors) == 22 and all(v.event_id.startswith("synthetic-WICKUSDT-liquidation-") for v in vectors)
    assert all(screen(np.asarray(v.values, dtype=np.float32), required) is None for v in vectors)
    names = FeatureSpec().names()
    assert all(v.values[names.index("liq_count_1s")] >= 1 for v in vectors)
    assert all(math.isfinite(v.values[names.index(n)]) for v in vectors
               for n in ("oi_change_60s", "funding_rate", "book_depth_imbalance_20", "trade_rv_5s"))


def test_the_dataset_decides_at_every_liquidation_for_the_side_it_calls_for() -> None:
    scenario = generate(SMALL)
    liqs = [r for r in scenario.records if isinstance(r, Liquidation)]
    found = decision_points(scenario.market_records(), FeatureSpec(), AtLiquidations())
    assert [p.vector.event_id for p in found.points] == [r.event_id for r in liqs] and not found.skipped
    assert [p.sides for p in found.points] == [(entry_side(r.position_side),) for r in liqs]
    tape = found.tapes[(VENUE, "WICKUSDT")]
    for point, liq in zip(found.points, liqs, strict=True):
        # the label starts after the newest trade folded in before the liquidation (its own sweep included)
        assert tape.ts_ns[point.tape_index] <= liq.ts_event_ns < tape.ts_ns[point.tape_index + 1]


def test_liqbot_train_scenario_reproduces_the_committed_scenario_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    committed = ModelRegistry(SCENARIO_REGISTRY)
    assert main(["train", "--scenario", "wick", "--models", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    shipped = committed.meta()
    assert printed["version"] == committed.current(), (
        f"a re-fit gave {printed['version']}, the committed scenario model is {committed.current()} (fitted with "
        f"{shipped['libraries']}): run `liqbot train --scenario wick` and commit training/scenario_models")
    assert printed["synthetic"] is True and printed["metrics"] == shipped["metrics"]
    version = printed["version"]
    assert json.loads((tmp_path / version / "meta.json").read_text()) == shipped
    assert (tmp_path / version / "model.onnx").read_bytes() == (committed.root / version / "model.onnx").read_bytes()


def test_the_scenario_model_card_says_it_is_synthetic_with_held_out_metrics() -> None:
    meta = ModelRegistry(SCENARIO_REGISTRY).meta()
    assert meta["synthetic"] is True and meta["created_by"] == "liqbot train --scenario wick"
    assert meta["purpose"] == ("synthetic scenario model, fitted on training/scenario.py output (seed 1), for "
                               "exercising the order path in tests and benchmarks; not a strategy claim")
    assert meta["scenario"]["generator"] == "training/scenario.py" and meta["scenario"]["seed"] == 1
    assert meta["decision_points"].startswith("every liquidation of the SYNTHETIC scenario")
    [data] = meta["data"]
    assert data["venue"] == "synthetic" and data["file"].startswith("SYNTHETIC training/scenario.py")
    assert data["rows"] == data["decision_points"] * 8 == 3048 and data["past_tape_end"] == 0
    metrics = meta["metrics"]
    assert metrics["train_rows"] + metrics["test_rows"] < data["rows"]  # purged at the time split
    assert metrics["fill"]["auc"] > 0.8 and metrics["edge"]["test_rows_positive"] > 0
    # the held-out rows the model calls positive did better than all rows: the wick it was built on, found again
    assert metrics["edge"]["realised_mean_positive"] > metrics["edge"]["realised_mean_all"]


def test_a_synthetic_model_can_never_become_current_in_the_main_registry(capsys: pytest.CaptureFixture[str]) -> None:
    current = ModelRegistry().current()
    with pytest.raises(LiqbotError, match="synthetic scenario model must never be CURRENT"):
        ModelRegistry(DEFAULT_REGISTRY).publish(b"any bytes", {"synthetic": True})
    assert ModelRegistry().current() == current and "synthetic" not in ModelRegistry().meta()
    assert main(["train", "--scenario", "wick", "some-capture.gz"]) == 2
    assert "give no capture files" in capsys.readouterr().err


# -- the order path on a held-out scenario: features -> scenario model -> decide -> paper venue -> outcomes -------


@dataclass
class OrderPath:
    """Record by record, as the agents will run it: features, prediction at each liquidation, decision, paper venue."""

    scorer: Scorer
    engine: FeatureEngine = field(default_factory=FeatureEngine)
    account: AccountRisk = field(default_factory=lambda: AccountRisk(starting_equity=EQUITY))
    venue: PaperVenue = field(default_factory=lambda: PaperVenue(PaperConfig(), PaperAccount(starting_equity=EQUITY)))
    strategies: dict[tuple[str, str], SymbolStrategy] = field(default_factory=dict)
    predictions: list[Prediction] = field(default_factory=list)
    intents: list[OrderIntent] = field(default_factory=list)
    placed_ns: dict[str, int] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)

    def step(self, record: ScenarioRecord) -> None:
        key = (record.venue, record.symbol)
        strategy = self.strategies.setdefault(key, SymbolStrategy.new(*key, LIMITS))
        reason = strategy.on_record(record, LIMITS)
        if reason is not None:
            self.feed(self.venue.cancel_all(*key, record.ts_event_ns, record.ts_recv_ns, reason))
        self.feed(self.venue.on_record(record))
        vector = None if isinstance(record, Instrument) else self.engine.update(record)
        if vector is None or not isinstance(record, Liquidation):
            return
        prediction = self.scorer.predict(vector, entry_side(record.position_side))
        assert prediction is not None
        self.predictions.append(prediction)
        decision = decide(strategy, self.account, prediction, record, CONFIG)
        self.decisions[decision.code] += 1
        if decision.intent is not None:
            self.intents.append(decision.intent)
            self.feed(self.venue.submit(decision.intent))

    def feed(self, records: list[VenueRecord]) -> None:
        for r in records:
            if not isinstance(r, OrderEvent):
                self.account.on_position(r, LIMITS)
                continue
            if r.status == "ACCEPTED":
                self.placed_ns[r.client_order_id] = r.ts_event_ns
            outcome = self.strategies[(r.venue, r.symbol)].on_order_event(r, self.account, LIMITS)
            if outcome is not None:
                self.outcomes.append(outcome)


@cache
def held_out_run() -> tuple[Scenario, OrderPath]:
    scenario = generate(HELD_OUT)
    path = OrderPath(Scorer(ModelRegistry(SCENARIO_REGISTRY).load()))
    for record in scenario.records:
        path.step(record)
    return scenario, path


def test_the_order_path_runs_end_to_end_on_a_held_out_scenario() -> None:
    scenario, path = held_out_run()
    liqs = [r for r in scenario.records if isinstance(r, Liquidation)]
    assert len(path.predictions) == len(liqs) == 149
    assert sum(any(a.expected_net_return > 0 for a in p.arms) for p in path.predictions) == 130
    # one live order per symbol: the later liquidations of a burst mostly find the first order still live
    assert path.decisions == {"intent": 21, "risk_order": 106, "no_positive_arm": 19, "thompson_declined": 3}
    assert len(path.intents) == 21 and all(i.model_version == ModelRegistry(SCENARIO_REGISTRY).current()
                                           for i in path.intents)
    for intent in path.intents:
        burst = _burst(scenario, intent)
        assert intent.side == entry_side(burst.liquidated) and intent.mode == "PAPER" and intent.post_only
        assert intent.expected_net_return > 0 and intent.ts_event_ns <= burst.ts_ns + burst.push_ns
    counts = Counter[str]()
    for symbol in path.venue.symbols.values():
        counts.update(symbol.counts)
    assert counts == {"accepted": 21, "expired": 12, "filled": 9, "hold_elapsed": 7, "stop_loss": 2}
    closed = [o.net_return for o in path.outcomes if o.status == "CLOSED" and o.net_return is not None]
    assert Counter(o.status for o in path.outcomes) == {"EXPIRED": 12, "CLOSED": 9}
    assert (sum(r > 0 for r in closed), sum(r < 0 for r in closed)) == (6, 3)  # wins; stop-losses and a scratch
    assert path.account.equity() == pytest.approx(EQUITY + sum(path.venue.account.pnl.values()))


def test_realised_outcomes_have_the_sign_the_scenario_built_in() -> None:
    """Sanity, not performance: an order fills where the built-in wick reaches its limit, and its realised return
    has the sign of the built-in price (wick only, no random walk) at its exit, wherever that is clearly signed."""
    scenario, path = held_out_run()
    tops = _tops(scenario)
    signs: list[float] = []
    for outcome in path.outcomes:
        intent, burst = outcome.intent, _burst(scenario, outcome.intent)
        before, placed_ns = _mid(tops, burst.symbol, burst.ts_ns), path.placed_ns[intent.client_order_id]
        through = _built_in_through_bps(burst, before, intent, placed_ns)
        if outcome.status == "EXPIRED":
            assert through < 5.0, (outcome, through)  # the wick stopped short of the limit (or turned before it)
            continue
        assert outcome.status == "CLOSED" and outcome.net_return is not None and through > -5.0, (outcome, through)
        built_in, noise = _built_in_return_bps(burst, before, intent, outcome.ts_event_ns), \
            _walk_bps(outcome.ts_event_ns - placed_ns)
        assert outcome.net_return * 1e4 == pytest.approx(built_in, abs=noise), outcome
        if abs(built_in) > noise * 3 / 4:  # beyond three sd of the walk: the sign is the wick's
            assert math.copysign(1, outcome.net_return) == math.copysign(1, built_in), (outcome, built_in)
            signs.append(math.copysign(1, built_in))
    assert Counter(signs) == {-1.0: 2, 1.0: 1}  # two wicks ran through the stop, one reverted past the fees


# -- helpers -----------------------------------------------------------------------------------------------------


def _tops(scenario: Scenario) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    for r in scenario.records:
        if isinstance(r, TopOfBook):
            times, mids = out.setdefault(r.symbol, ([], []))
            times.append(r.ts_event_ns)
            mids.append(r.mid)
    return out


def _mid(tops: dict[str, tuple[list[int], list[float]]], symbol: str, ts_ns: int) -> float:
    """The mid of the newest top of book strictly before `ts_ns`."""
    times, mids = tops[symbol]
    return mids[bisect_left(times, ts_ns) - 1]


def _top_at(tops: dict[str, tuple[list[int], list[float]]], symbol: str, ts_ns: int) -> tuple[int, float]:
    """The time and mid of the first top of book at or after `ts_ns`."""
    times, mids = tops[symbol]
    i = bisect_left(times, ts_ns)
    return times[i], mids[i]


def _walk_bps(ns: int) -> float:
    """Four standard deviations of the scenario's random walk over `ns`, and a few ticks (spread, sweeps)."""
    return 4 * HELD_OUT.volatility_bps * math.sqrt(ns / S) + 4.0


def _bps(price: float, reference: float) -> float:
    return (price / reference - 1.0) * 1e4


def _burst(scenario: Scenario, intent: OrderIntent) -> Burst:
    burst = scenario.burst_at(intent.symbol, intent.ts_event_ns)
    assert burst is not None
    return burst


def _built_in_through_bps(burst: Burst, before: float, intent: OrderIntent, placed_ns: int) -> float:
    """How far past the limit the built-in wick takes the price after placement (negative: it stops short)."""
    extreme = before * math.exp(burst.offset(max(placed_ns, burst.ts_ns + burst.push_ns)))
    direction = 1 if intent.side == "BUY" else -1
    return direction * _bps(float(intent.price), extreme)


def _built_in_return_bps(burst: Burst, before: float, intent: OrderIntent, exit_ns: int) -> float:
    """The net return, after fees, of an exit at the built-in price at `exit_ns`."""
    direction = 1 if intent.side == "BUY" else -1
    return direction * _bps(before * math.exp(burst.offset(exit_ns)), float(intent.price)) - FEES_BPS

