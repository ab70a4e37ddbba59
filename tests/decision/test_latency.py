"""Latency models of the paper venue: deterministic draws keyed by ids, their distributions, and what a bad
setting says. The samples here are hand-made (synthetic) numbers of ms."""

from __future__ import annotations

import hashlib
import math
import re
import statistics

import pytest

from decision.latency import (
    ConstantLatency,
    LognormalLatency,
    RecordedLatency,
    UniformLatency,
    draw_ns,
    parse_latency,
    parse_samples,
    uniform_of,
)

IDS = [f"wick-{n:05d}" for n in range(4_000)]


def test_the_same_seed_and_id_give_the_same_draw_and_other_ids_or_seeds_other_draws() -> None:
    model = LognormalLatency(median_ms=5.0, sigma=0.5)
    first = [draw_ns(model, 0, "entry", i) for i in IDS]
    assert first == [draw_ns(model, 0, "entry", i) for i in IDS]  # no global random state
    assert len(set(first)) > 3_900
    assert first != [draw_ns(model, 1, "entry", i) for i in IDS]
    assert first != [draw_ns(model, 0, "cancel", i) for i in IDS]  # an order's entry and cancel draw apart
    # pinned: a change of the hash-to-uniform mapping would change every realistic backtest's results
    digest = hashlib.sha256(b"0:entry:wick-00000").digest()
    assert uniform_of(0, "entry", "wick-00000") == (int.from_bytes(digest[:8], "big") + 0.5) / 2**64 \
        == pytest.approx(0.153231, abs=1e-6)
    assert all(0.0 < uniform_of(0, "entry", i) < 1.0 for i in IDS)


def test_each_model_draws_from_its_distribution() -> None:
    assert {draw_ns(ConstantLatency(ms=2.5), 0, "entry", i) for i in IDS} == {2_500_000}
    uniform = [draw_ns(UniformLatency(low_ms=2.0, high_ms=8.0), 0, "entry", i) / 1e6 for i in IDS]
    assert 2.0 <= min(uniform) < 2.1 and 7.9 < max(uniform) <= 8.0
    assert statistics.mean(uniform) == pytest.approx(5.0, abs=0.1)
    lognormal = [draw_ns(LognormalLatency(median_ms=5.0, sigma=0.5), 0, "entry", i) / 1e6 for i in IDS]
    assert statistics.median(lognormal) == pytest.approx(5.0, rel=0.03)
    assert statistics.stdev(math.log(x) for x in lognormal) == pytest.approx(0.5, rel=0.05)
    assert LognormalLatency(median_ms=5.0, sigma=0.5).quantile_ms(0.5) == 5.0


def test_recorded_latencies_are_drawn_from_their_empirical_distribution() -> None:
    samples = (3.0, 1.0, 2.0, 10.0)
    recorded = RecordedLatency(samples_ms=samples, source="acks.txt")
    assert recorded.samples_ms == (1.0, 2.0, 3.0, 10.0)  # sorted: their order does not shape results
    draws = [draw_ns(recorded, 0, "entry", i) / 1e6 for i in IDS]
    assert set(draws) == set(samples)
    assert all(draws.count(s) == pytest.approx(len(IDS) / 4, rel=0.1) for s in samples)
    assert (recorded.quantile_ms(0.0), recorded.quantile_ms(0.2499), recorded.quantile_ms(0.25),
            recorded.quantile_ms(0.9999)) == (1.0, 1.0, 2.0, 10.0)


def test_latencies_as_written_on_the_command_line() -> None:
    assert parse_latency("5") == ConstantLatency(ms=5.0) == parse_latency("constant:5")
    assert parse_latency("uniform:2:8") == UniformLatency(low_ms=2.0, high_ms=8.0)
    assert parse_latency(" lognormal:5:0.5") == LognormalLatency(median_ms=5.0, sigma=0.5)
    text = "# acks measured on the live venue, ms\n4.5\n\n5.5  # a slow one\n"
    assert parse_samples(text, "acks.txt") == RecordedLatency(samples_ms=(4.5, 5.5), source="acks.txt")


@pytest.mark.parametrize(("text", "message"), [
    ("fast", "latency 'fast' is not one of MS, constant:MS, uniform:LOW_MS:HIGH_MS or lognormal:MEDIAN_MS:SIGMA "
             "(e.g. 5, uniform:2:8, lognormal:5:0.5)"),
    ("lognormal:5", "latency 'lognormal:5' is not one of MS, constant:MS"),
    ("-1", "latency '-1': a constant latency must be a finite number of ms >= 0, not -1.0"),
    ("nan", "latency 'nan': a constant latency must be a finite number of ms >= 0, not nan"),
    ("uniform:8:2", "latency 'uniform:8:2': uniform latency: HIGH_MS 2.0 is below LOW_MS 8.0"),
    ("lognormal:0:0.5", "latency 'lognormal:0:0.5': lognormal latency: MEDIAN_MS must be a finite number > 0"),
])
def test_a_bad_latency_says_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_latency(text)


def test_bad_recorded_latencies_say_where_and_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"^acks\.txt:2: '4,5' is not a number of ms \(write one latency in ms a "
                                         r"line\)$"):
        parse_samples("3\n4,5\n", "acks.txt")
    with pytest.raises(ValueError, match=r"^recorded latencies in acks\.txt: no samples$"):
        parse_samples("# nothing measured\n", "acks.txt")
    with pytest.raises(ValueError, match=r"a recorded latency must be a finite number of ms >= 0, not -2\.0"):
        parse_samples("1\n-2\n", "acks.txt")
