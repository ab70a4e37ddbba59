"""The compiled tops of book (`liqbot_core.TopsAsOf`, the decide step's join) against their oracle
(`tests/oracle/tops.py`): the same top as of every time asked, the same number held, on every top of the real
captures and on SYNTHETIC hypothesis sequences of out-of-order, same-time and NaN tops; and its snapshots.

Tops are compared by their repr, which holds a NaN mid equal to a NaN mid and tells -0.0 from 0.0 (`==` does
neither).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liqbot_core import TopsAsOf

from decision.pipeline import _TOPS_KEPT
from schemas.records import TopOfBook
from tests.decision.test_compiled_features import every_real_record
from tests.oracle.tops import TopsAsOf as Oracle

Key = tuple[str, str]
T0 = 1_700_000_000_000_000_000


@cache
def real_tops() -> tuple[TopOfBook, ...]:
    """Every top of the real captures, in capture order (the Binance one has out-of-order and same-time tops)."""
    return tuple(r for r in every_real_record() if isinstance(r, TopOfBook))


def assert_same_as_of(compiled: TopsAsOf, oracle: Oracle, times: Iterable[int]) -> None:
    assert len(compiled) == len(oracle)
    for ts in times:
        assert repr(compiled.as_of(ts)) == repr(oracle.as_of(ts)), ts


def test_every_real_top_gives_the_oracles_top_at_its_time_between_tops_before_the_first_and_after_trims() -> None:
    books: dict[Key, tuple[TopsAsOf, Oracle]] = {}
    ignored = trims = 0
    for top in real_tops():
        compiled, oracle = books.setdefault((top.venue, top.symbol), (TopsAsOf(_TOPS_KEPT), Oracle(_TOPS_KEPT)))
        held, newest = len(oracle), oracle.times[-1] if oracle.times else top.ts_event_ns
        compiled.add(top)
        oracle.add(top)
        ts = top.ts_event_ns
        times = [ts, ts - 1, (newest + ts) // 2, oracle.times[0] - 1, oracle.times[0]]
        if len(oracle) < held:  # trimmed: the time of every top it still holds, and just before each
            trims += 1
            times.extend(t for held_ts in oracle.times for t in (held_ts, held_ts - 1))
        ignored += len(oracle) == held
        assert_same_as_of(compiled, oracle, times)
    binance = books[("binance-usdm", "BTCUSDT")]
    assert len(books) == 7 and trims > 10 and ignored > 900  # trims and out-of-order tops were both reached
    assert binance[0].as_of(binance[1].times[0] - 1) is None  # older than what it kept: unknown, not wrong


def test_a_real_book_pickles_as_bytes_and_restores_equal() -> None:
    book = TopsAsOf(_TOPS_KEPT)
    tops = [t for t in real_tops() if t.venue == "binance-usdm"]
    for top in tops[:-1]:
        book.add(top)
    state = book.__getstate__()
    assert isinstance(state, bytes)
    restored: TopsAsOf = pickle.loads(pickle.dumps(book, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored == book and len(restored) == len(book) and restored.__getstate__() == state
    assert all(restored.as_of(t.ts_event_ns) == book.as_of(t.ts_event_ns) for t in tops)
    restored.add(tops[-1])
    assert restored != book and restored != TopsAsOf(_TOPS_KEPT) and book != TopsAsOf(_TOPS_KEPT + 1)
    book.add(tops[-1])
    assert restored == book


def test_a_corrupt_state_is_refused_with_a_value_error_and_changes_nothing() -> None:
    book = TopsAsOf(3)
    for i in range(4):
        book.add(_top(T0 + i, f"id{i}"))
    state = book.__getstate__()
    for bad in (b"", b"garbage", state[:-1], state + b"\0"):
        target = TopsAsOf(3)
        target.add(_top(T0, "kept"))
        before = target.__getstate__()
        with pytest.raises(ValueError, match="not a saved TopsAsOf: the state is truncated, foreign or out of"):
            target.__setstate__(bad)
        assert target.__getstate__() == before
    with pytest.raises(ValueError, match="at least 1"):
        TopsAsOf(0)


def _top(ts_ns: int, event_id: str, mid: float = 100.0, venue: str = "binance-usdm",
         symbol: str = "BTCUSDT") -> TopOfBook:
    return TopOfBook(venue=venue, symbol=symbol, event_id=event_id, ts_event_ns=ts_ns, ts_exchange_ns=ts_ns - 5,
                     ts_recv_ns=ts_ns + 5, update_id=ts_ns - T0, bid_price="99.9", bid_size="1", ask_price="100.1",
                     ask_size="2", mid=mid, microprice=mid)


TEXTS = st.text(max_size=5)  # any text: multi-byte UTF-8 moves every later text's bounds
LONGS = st.integers(-2**63, 2**63 - 1)
PRICES = st.floats() | st.just(math.nan)  # NaN, infinities and -0.0 too


@st.composite
def synthetic_tops(draw: st.DrawFn) -> list[TopOfBook]:
    """SYNTHETIC: tops of a time that steps back, stays (duplicate times) or moves on, of two venues' symbols."""
    tops: list[TopOfBook] = []
    ts_ns = T0
    for _ in range(draw(st.integers(0, 60))):
        ts_ns += draw(st.sampled_from([0, 0, 1, 2, 30, -1, -3]))
        venue, symbol = draw(st.sampled_from([("binance-usdm", "BTCUSDT"), ("bybit-linear", "ÉTHUSDT")]))
        tops.append(TopOfBook(venue=venue, symbol=symbol, event_id=draw(TEXTS), ts_event_ns=ts_ns,
                              ts_exchange_ns=draw(LONGS), ts_recv_ns=draw(LONGS), update_id=draw(LONGS),
                              bid_price=draw(TEXTS), bid_size=draw(TEXTS), ask_price=draw(TEXTS),
                              ask_size=draw(TEXTS), mid=draw(PRICES), microprice=draw(PRICES)))
    return tops


@given(synthetic_tops(), st.integers(1, 6), st.lists(st.integers(T0 - 200, T0 + 1900), max_size=12),
       st.integers(0, 60))
@settings(max_examples=400, deadline=None)
def test_synthetic_tops_give_the_oracles_tops_as_of_any_time(tops: list[TopOfBook], kept: int, times: list[int],
                                                              snapshot_at: int) -> None:
    compiled, oracle = TopsAsOf(kept), Oracle(kept)
    for i, top in enumerate(tops):
        if i == snapshot_at:
            restored: TopsAsOf = pickle.loads(pickle.dumps(compiled))
            assert restored == compiled  # NaN mids too: the state equals itself
            compiled = restored
        compiled.add(top)
        oracle.add(top)
        assert len(compiled) <= 2 * kept - 1
        assert_same_as_of(compiled, oracle, [*times, top.ts_event_ns - 1, top.ts_event_ns, top.ts_event_ns + 1])
    assert_same_as_of(compiled, oracle, [T0 - 2**40, *oracle.times, T0 + 2**40])


def test_the_synthetic_rules_are_reached() -> None:
    """By hand, what the generator above must reach: a NaN top held and returned, an older top ignored, venue and
    symbol taken from the newest top, and a trim to `kept`."""
    compiled, oracle = TopsAsOf(2), Oracle(2)
    for top in (_top(T0, "a", mid=math.nan), _top(T0 - 1, "old"), _top(T0 + 1, "b", venue="bybit-linear", symbol="X")):
        compiled.add(top)
        oracle.add(top)
    assert_same_as_of(compiled, oracle, range(T0 - 2, T0 + 3))
    nan, newest = compiled.as_of(T0), compiled.as_of(T0 + 2)
    assert len(compiled) == 2 and compiled.as_of(T0 - 1) is None and nan is not None and math.isnan(nan.mid)
    assert newest is not None and (newest.venue, newest.symbol, newest.event_id) == ("bybit-linear", "X", "b")
    for top in (_top(T0 + 5, "c"), _top(T0 + 6, "d")):  # four held: the oldest two go
        compiled.add(top)
        oracle.add(top)
    assert_same_as_of(compiled, oracle, range(T0 - 2, T0 + 8))
    assert len(compiled) == 2 and compiled.as_of(T0 + 4) is None
