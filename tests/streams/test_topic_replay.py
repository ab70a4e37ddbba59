"""Topic replay (`liqbot replay`) and parity: the live agents, the topic replay and the history replay agree.

Market records are the real Bybit captures; the run through the agents is the SYNTHETIC wick scenario
(training/scenario.py), the only market here that reaches the order path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, TopicPartition

from liqbot.config import Settings
from liqbot.data import BYBIT_CAPTURE, LIQUIDATION_FRAMES
from liqbot.errors import LiqbotError
from liqbot.times import parse_time_ms
from schemas.records import AvroRecord, OrderEvent, OrderIntent
from streams.capture_replay import capture_records
from streams.history.backtest import result_hash
from streams.topic_replay import copy_ranges, plan
from tests.agents.test_workers import collectors, feed, same_record, workers  # noqa: F401
from training.registry import SCENARIO_REGISTRY
from training.scenario import WickScenario, generate

OUTPUTS = ["features", "predictions", "orders.intents", "orders.events", "positions"]


def run_namespace(settings: Settings, run: str) -> Settings:
    return replace(settings, kafka=replace(settings.kafka, topic_prefix=f"{settings.kafka.topic_prefix}{run}."))


def raw(settings: Settings, topic: str) -> list[tuple[int, int, bytes | None, bytes | None, int]]:
    """Every message of a topic: partition, offset, key, value, timestamp."""
    name = settings.kafka.topic_prefix + topic
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(name, timeout=10).topics[name].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(name, p, 0) for p in partitions if ends[p] > 0])
        out: list[tuple[int, int, bytes | None, bytes | None, int]] = []
        while len(out) < sum(ends.values()):
            msg = consumer.poll(10)
            assert msg is not None and msg.error() is None, f"{name}: {len(out)} of {sum(ends.values())} read"
            out.append((msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value(), msg.timestamp()[1]))
        return sorted(out)
    finally:
        consumer.close()


def test_a_range_is_copied_to_the_run_byte_for_byte_and_only_that_range(settings: Settings) -> None:
    """Real records: the 44 s Bybit capture, then a cut, then the captured allLiquidation frames."""
    before = capture_records(BYBIT_CAPTURE, "bybit-linear")
    after = capture_records(LIQUIDATION_FRAMES, "bybit-linear")
    feed(settings, before)
    time.sleep(1.0)  # Kafka timestamps are milliseconds of produce time: the cut falls between the two
    cut_ms = int(time.time() * 1000)
    time.sleep(1.0)
    feed(settings, after)
    end_ms = int(time.time() * 1000) + 1

    ranges = plan(settings.kafka, cut_ms, end_ms)
    planned: Counter[str] = Counter()
    for r in ranges:
        planned[r.topic] += r.records
    target = run_namespace(settings, "r1")
    feed(target, [])  # creates the run's topics
    copied = copy_ranges(settings.kafka, target.kafka, ranges)

    schema_topics = {"liqbot.Liquidation": "market.liquidations", "liqbot.Instrument": "market.instruments"}
    expected = Counter(schema_topics[r.SCHEMA] for r in after)
    # the listings are state: copied from the start, so a decision after the cut still knows its instrument
    expected["market.instruments"] += sum(r.SCHEMA == "liqbot.Instrument" for r in before)
    assert +planned == copied == expected, (planned, copied)
    assert copied["market.liquidations"] == len(after) > 0
    for topic in ("market.liquidations", "market.instruments", "market.trades"):
        source = [m for m in raw(settings, topic) if topic == "market.instruments" or m[4] >= cut_ms]
        # same partition, key, value and timestamp, in the same order: offsets restart at 0 in the run
        assert [m[:1] + m[2:] for m in raw(target, topic)] == [m[:1] + m[2:] for m in source], topic


def test_a_range_without_records_and_a_reversed_range_are_refused(settings: Settings) -> None:
    feed(settings, capture_records(LIQUIDATION_FRAMES, "bybit-linear"))
    ranges = plan(settings.kafka, 1_000_000, 2_000_000)  # 1970: nothing but the listings
    assert sum(r.records for r in ranges if not r.state) == 0
    assert {r.topic for r in ranges if r.state} == {"market.instruments", "market.funding"}
    with pytest.raises(LiqbotError, match=r"--to \(1000 ms\) must be after --from \(2000 ms\)"):
        plan(settings.kafka, 2000, 1000)
    with pytest.raises(ValueError, match="not a time: 'yesterday'"):
        parse_time_ms("yesterday")
    assert parse_time_ms("2026-12-07T10:00:00Z") == parse_time_ms("2026-12-07 10:00") == 1_796_637_600_000


def _liqbot(settings: Settings, home: Path, *args: str, bus: bool = True) -> subprocess.CompletedProcess[str]:
    """`liqbot` on the test's broker and namespace; `bus=False`: a command without Kafka options."""
    env = {**os.environ, "LIQBOT_HOME": str(home), "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix,
           "LIQBOT_PARTITIONS": str(settings.kafka.partitions)}
    where = ["--bootstrap", settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url] if bus else []
    return subprocess.run([sys.executable, "-m", "liqbot.cli", args[0], *where, *args[1:]],
                          env=env, capture_output=True, text=True, timeout=900, check=False)


def differing(a: AvroRecord, b: AvroRecord) -> list[str]:
    """The fields in which two records of one type differ (NaN equal to NaN)."""
    da, db = a.to_avro(), b.to_avro()
    return sorted(f for f in da.keys() | db.keys() if repr(da.get(f)) != repr(db.get(f)))  # repr: nan is 'nan'


def _by_id(out: Any, topic: str) -> dict[str, AvroRecord]:
    return dict(out.by_topic.get(topic, {}))


def cast_intent(record: object) -> OrderIntent:
    return cast(OrderIntent, record)


@pytest.mark.parametrize("realism", [(), ("--entry-latency", "lognormal:4:0.5", "--cancel-latency", "3",
                                           "--queue-model", "log_prob")], ids=["defaults", "latency-and-queue"])
def test_the_live_agents_the_topic_replay_and_the_history_replay_give_the_same_orders(
        settings: Settings, workers: Any, collectors: Any, tmp_path: Path, realism: tuple[str, ...]) -> None:  # noqa: F811
    """SYNTHETIC wick scenario (it places orders): a live worker, `liqbot replay` of its range, then
    `liqbot backtest` of the replay's history in ClickHouse: the same records out, and the same result hash; also
    with the paper venue's latency and queue model on, given alike to all three."""
    scenario = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900,
                                     bursts=4))
    start = str(int(time.time() * 1000) - 1)
    # in Kafka before the worker starts, as the captures are replayed into it: fed while a worker reads at full
    # speed, a topic the producer has not reached yet looks idle to the merge (docs/backtest.md)
    feed(settings, list(scenario.records))
    end = str(int(time.time() * 1000) + 1)
    live = collectors(settings, OUTPUTS)
    worker = workers(settings, "live", "--models", str(SCENARIO_REGISTRY), *realism)
    live.wait(lambda: live.count("orders.intents") > 0, 120, "an intent", worker)
    live.settle(OUTPUTS, quiet_s=6)

    home = tmp_path / "home"
    done = _liqbot(settings, home, "replay", "--from", start, "--to", end, "--run", "again",
                   "--models", str(SCENARIO_REGISTRY), *realism)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["market_records_replayed"] == len(scenario.records)
    assert summary["order_intents"] == live.count("orders.intents")

    replayed = collectors(run_namespace(settings, "again"), OUTPUTS)
    replayed.settle(OUTPUTS, quiet_s=3)
    for topic in OUTPUTS:
        mine, theirs = _by_id(replayed, topic), _by_id(live, topic)
        assert mine.keys() == theirs.keys(), topic
        assert [(k, differing(mine[k], theirs[k])) for k in mine if not same_record(mine[k], theirs[k])] == [], topic
    events = [cast(OrderEvent, e) for e in _by_id(live, "orders.events").values()]
    assert any(e.status == "FILLED" for e in events)
    if realism:  # each entry reached the venue a drawn latency after its decision: strictly later
        decided = {i.client_order_id: i.ts_event_ns for i in map(cast_intent, _by_id(live, "orders.intents").values())}
        accepted = [e for e in events if e.status == "ACCEPTED"]
        assert accepted and all(e.ts_event_ns > decided[e.client_order_id] for e in accepted)

    times = [r.ts_event_ns for r in scenario.records]
    history = _liqbot(settings, home, "backtest", "--namespace", run_namespace(settings, "again").kafka.topic_prefix,
                      "--from", str(min(times) // 1_000_000), "--to", str(max(times) // 1_000_000 + 1),
                      "--symbols", "WICKUSDT,SPIKEUSDT,DIPUSDT", "--models", str(SCENARIO_REGISTRY), *realism,
                      bus=False)
    assert history.returncode == 0, history.stdout[-3000:] + history.stderr[-3000:]
    backtest = json.loads(history.stdout.splitlines()[-1])
    intents = [cast(OrderIntent, i) for i in _by_id(live, "orders.intents").values()]
    assert (backtest["intents"], backtest["order_events"]) == (len(intents), len(events))
    assert backtest["result_hash"] == result_hash(intents, events)

    again = _liqbot(settings, home, "replay", "--from", start, "--to", end, "--run", "again")
    assert again.returncode == 2
    assert "error: run 'again' exists already (" in again.stderr and "choose another --run" in again.stderr
