"""The compiled features equal the Python oracle bit for bit: every vector, every count, every exception.

On every record of the real captures, on the SYNTHETIC wick scenario, and on SYNTHETIC hypothesis-made
sequences of late, duplicated and out-of-order records, gaps and NaN inputs; and a state restored from its
snapshot bytes continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import math
import pickle
import struct
from collections.abc import Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.feature_spec import NS_PER_S, FeatureSpec
from decision.features import FeatureEngine, MarketRecord, feature_history
from liqbot.data import BINANCE_CAPTURE
from schemas.records import BookLevel, BookUpdate, FeatureVector, Liquidation, Ticker, TopOfBook, Trade
from tests.oracle.features import FeatureEngine as Oracle
from tests.oracle.features import feature_history as oracle_history
from training.dataset import market_records, real_records
from training.scenario import WickScenario, generate


def bits(values: Sequence[float]) -> list[bytes | str]:
    """Each value's 64 bits (so 0.0 and -0.0 differ); every NaN alike (Python does not keep its payload)."""
    return ["nan" if math.isnan(v) else struct.pack("<d", v) for v in values]


def assert_same(compiled: Sequence[FeatureVector], oracle: Sequence[FeatureVector]) -> None:
    assert len(compiled) == len(oracle)
    for a, b in zip(compiled, oracle, strict=True):
        assert (a.venue, a.symbol, a.event_id, a.ts_event_ns, a.ts_recv_ns, a.feature_spec, a.side) == \
               (b.venue, b.symbol, b.event_id, b.ts_event_ns, b.ts_recv_ns, b.feature_spec, b.side)
        assert bits(a.values) == bits(b.values), a.event_id


def updates(records: Sequence[MarketRecord]) -> tuple[FeatureEngine, Oracle, list[FeatureVector]]:
    """Both engines' `update` on every record: the same records give a vector; the compiled vectors."""
    compiled, oracle = FeatureEngine(), Oracle()
    vectors, expected = [], []
    for record in records:
        a, b = compiled.update(record), oracle.update(record)
        assert (a is None) == (b is None)
        vectors += [a] if a else []
        expected += [b] if b else []
    assert_same(vectors, expected)
    return compiled, oracle, vectors


@cache
def every_real_record() -> tuple[MarketRecord, ...]:
    """The whole Binance capture, then the Bybit capture and the liquidation frames (as `real_records` mixes them)."""
    binance = market_records(BINANCE_CAPTURE, "binance-usdm")
    return (*binance, *(r for r in real_records() if r.venue != "binance-usdm"))


def test_every_real_record_gives_the_oracles_vector_and_counts() -> None:
    records = list(every_real_record())
    assert len(records) > 100_000
    assert_same(feature_history(records), oracle_history(records))
    compiled, oracle, vectors = updates(records)
    assert len(vectors) == sum(isinstance(r, Liquidation) for r in records) == 5
    assert compiled.counts == oracle.counts and compiled.counts["applied"] == len(records)
    assert compiled.counts["reordered"] > 0  # the Bybit book times trail its trades: the rule is exercised


def test_the_wick_scenario_gives_the_oracles_vectors() -> None:
    """SYNTHETIC: the scenario's records (bursts, sweeps, book deltas, tickers) through both engines."""
    records = list(generate(WickScenario(seed=5, duration_s=600, bursts=2)).market_records())
    assert_same(feature_history(records), oracle_history(records))
    compiled, oracle, vectors = updates(records)
    assert len(vectors) == 22
    assert compiled.counts == oracle.counts


def test_a_restored_engine_continues_as_the_uninterrupted_one() -> None:
    """Snapshots as the agents take them (pickled into the changelog) every 5,000 real records."""
    records = every_real_record()
    uninterrupted, restarted = FeatureEngine(), FeatureEngine()
    for i, record in enumerate(records):
        if i % 5000 == 4999:
            restarted = pickle.loads(pickle.dumps(restarted))
        a, b = uninterrupted.apply(record), restarted.apply(record)
        assert a == b
        if i % 97 == 0:
            assert_same([restarted.vector(record)], [uninterrupted.vector(record)])
    assert restarted.counts == uninterrupted.counts and restarted.symbols == uninterrupted.symbols


def test_snapshots_are_bytes_no_larger_than_the_oracles_and_foreign_bytes_are_refused() -> None:
    engine, oracle = FeatureEngine(), Oracle()
    for record in every_real_record()[:30_000]:
        engine.apply(record)
        oracle.apply(record)
    assert len(pickle.dumps(engine)) <= len(pickle.dumps(oracle))
    state = engine._engine.__getstate__()
    assert isinstance(state, bytes) and len(state) > 0
    with pytest.raises(ValueError, match="not a saved feature engine"):
        FeatureEngine()._engine.__setstate__(state[:-1])


# SYNTHETIC sequences: two symbols, every market record kind, times that go back (reordered, late), repeat
# (duplicates) and jump (gaps), and texts and floats that are NaN, zero or infinite.

VENUE, T0 = "synthetic", 1_723_161_255 * NS_PER_S
SYMBOLS = st.sampled_from(["AUSDT", "BUSDT"])
PRICES = st.one_of(st.integers(1, 10**7).map(lambda c: f"{c / 100:.2f}"),
                   st.sampled_from(["NaN", "0", "inf", "1e-300", "65000.1", "-5"]))
SIZES = st.one_of(st.integers(0, 10**6).map(lambda m: f"{m / 1000:.3f}"), st.sampled_from(["NaN", "0", "1e308"]))
FLOATS = st.one_of(st.floats(1, 1e6), st.sampled_from([math.nan, 0.0, math.inf]))
LEVELS = st.lists(st.builds(BookLevel, price=st.integers(1, 40).map(str), size=st.sampled_from(["0", "1.5", "2"])),
                  max_size=4).map(tuple)
STEPS_NS = st.one_of(st.integers(0, 3 * NS_PER_S), st.integers(-3 * NS_PER_S, 0),
                     st.sampled_from([400 * NS_PER_S, 40 * 86_400 * NS_PER_S, -2 * NS_PER_S]))


def _stamp(symbol: str, n: int, ts_ns: int) -> dict[str, object]:
    return {"venue": VENUE, "symbol": symbol, "event_id": f"syn:{n}", "ts_event_ns": ts_ns,
            "ts_exchange_ns": ts_ns, "ts_recv_ns": ts_ns}


@st.composite
def market_record(draw: st.DrawFn, n: int, ts_ns: int) -> MarketRecord:
    stamp = _stamp(draw(SYMBOLS), n, ts_ns)
    kind = draw(st.sampled_from(["liq", "liq", "trade", "trade", "top", "book", "ticker"]))
    if kind == "liq":
        return Liquidation(**stamp, position_side=draw(st.sampled_from(["LONG", "SHORT"])),  # type: ignore[arg-type]
                           bankruptcy_price=draw(PRICES), size=draw(SIZES), feed="synthetic")
    if kind == "trade":
        return Trade(**stamp, taker_side=draw(st.sampled_from(["BUY", "SELL"])),  # type: ignore[arg-type]
                     price=draw(PRICES), size=draw(SIZES))
    if kind == "top":
        return TopOfBook(**stamp, update_id=n, bid_price=draw(PRICES), bid_size="1", ask_price=draw(PRICES),  # type: ignore[arg-type]
                         ask_size="1", mid=draw(FLOATS), microprice=draw(FLOATS))
    if kind == "book":
        return BookUpdate(**stamp, update_type=draw(st.sampled_from(["SNAPSHOT", "DELTA", "DELTA", "RESYNC"])),  # type: ignore[arg-type]
                          depth=50, update_id=n, seq=None, bids=draw(LEVELS), asks=draw(LEVELS))
    return Ticker(**stamp, funding_rate=draw(st.one_of(st.none(), PRICES)),  # type: ignore[arg-type]
                  next_funding_time_ns=draw(st.one_of(st.none(), st.integers(T0 - 10**13, T0 + 10**13))),
                  open_interest=draw(st.one_of(st.none(), SIZES)))


@st.composite
def sequences(draw: st.DrawFn) -> list[MarketRecord]:
    records: list[MarketRecord] = []
    ts_ns = T0
    for n in range(draw(st.integers(1, 80))):
        if records and draw(st.integers(0, 9)) == 0:
            records.append(draw(st.sampled_from(records)))  # a redelivery
            continue
        ts_ns += draw(STEPS_NS)
        records.append(draw(market_record(n, ts_ns)))
    return records


def _step(engine: FeatureEngine | Oracle, record: MarketRecord) -> tuple[object, ...]:
    """What one record does to an engine: its update's vector and the symbol's values after it, or what raised."""
    try:
        vector = engine.update(record)
        after = engine.vector(record)
    except (ArithmeticError, LookupError, ValueError) as exc:  # LookupError: the median's NaN quirk, in both
        return ("raised", type(exc), str(exc))
    at_liquidation = None if vector is None else (vector.ts_event_ns, vector.side, *bits(vector.values))
    return at_liquidation, after.ts_event_ns, *bits(after.values)


@given(sequences(), st.integers(0, 80))
@settings(max_examples=400, deadline=None)
def test_synthetic_sequences_give_the_oracles_vectors_counts_and_exceptions(records: list[MarketRecord],
                                                                             snapshot_at: int) -> None:
    compiled, oracle = FeatureEngine(), Oracle()
    for i, record in enumerate(records):
        if i == snapshot_at:
            compiled = pickle.loads(pickle.dumps(compiled))
        step = _step(compiled, record)
        assert step == _step(oracle, record), (i, record)
        if step[0] == "raised":
            return  # a half-applied record: the oracle's state is not defined beyond it
        assert compiled.counts == oracle.counts
    assert compiled.symbols == list(oracle.symbols)


def test_the_synthetic_rules_are_reached() -> None:
    """Lateness, duplicates, reordering and a raised exception, by hand (what the generator above must reach)."""
    def trade(symbol: str, n: int, ts_ns: int, price: str) -> Trade:
        return Trade(**_stamp(symbol, n, ts_ns), taker_side="BUY", price=price, size="1")  # type: ignore[arg-type]

    first = trade("AUSDT", 1, T0, "2")
    compiled, oracle = FeatureEngine(), Oracle()
    for record in (first, first, trade("AUSDT", 2, T0 - 5 * NS_PER_S, "1"), trade("AUSDT", 3, T0 - NS_PER_S // 2, "3")):
        assert compiled.apply(record) == oracle.apply(record)
    assert compiled.counts == oracle.counts == {"applied": 2, "duplicate": 1, "late": 1, "late:liqbot.Trade": 1,
                                                "reordered": 1}
    free = trade("BUSDT", 4, T0, "0")  # a price of 0: its vwap is 0, and last / vwap raises
    assert compiled.apply(free) and oracle.apply(free)
    with pytest.raises(ZeroDivisionError):
        oracle.vector(free)
    with pytest.raises(ZeroDivisionError):
        compiled.vector(free)
    after = trade("BUSDT", 5, T0, "5")  # after a price of 0 no log is taken (0 is no previous price)
    assert compiled.apply(after) and oracle.apply(after)
    assert bits(compiled.vector(after).values) == bits(oracle.vector(after).values)
    with pytest.raises(ValueError, match="math domain error"):
        compiled.apply(trade("AUSDT", 6, T0, "0"))  # log(0 / 3), as the oracle raises
    with pytest.raises(ValueError, match="math domain error"):
        oracle.apply(trade("AUSDT", 6, T0, "0"))


def test_a_spec_of_other_windows_gives_the_oracles_vectors() -> None:
    spec = FeatureSpec(liquidation_windows_s=(2, 7), acceleration_windows_s=(5, 14), burst_window_s=3,
                       burst_baseline_windows=7, trade_windows_s=(1, 9), depth_levels=(2, 3),
                       open_interest_windows_s=(4,), lateness_s=0.25)
    records = list(real_records()[:20_000:3])
    assert_same(feature_history(records, spec), oracle_history(records, spec))
