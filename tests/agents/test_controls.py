"""The operator's kill switch and dead-man switch: folded in plain code, sent by `liqbot control`, obeyed by a real
worker within a second, each use an audit record on the control topic.

The worker tests run the SYNTHETIC wick scenario (training/scenario.py), the one input that reaches orders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from decision.controls import SafetyControls
from decision.pipeline import DecideStep
from decision.risk import AccountRisk
from decision.strategy import StrategyConfig
from liqbot.config import Settings
from liqbot.data import REPO
from liqbot.errors import LiqbotError
from schemas.records import ControlAction, ControlCommand, OrderCancel, OrderIntent
from streams.clients import Clients
from streams.control import new_command, send_command
from streams.serde import make_serde
from streams.topics import TopicRegistry
from tests.agents.test_workers import collectors, feed, workers  # noqa: F401
from training.registry import SCENARIO_REGISTRY
from training.scenario import WickScenario, generate

S = 1_000_000_000


def _command(action: ControlAction, reason: str = "test", timeout_s: float | None = None,
             issued_ns: int = 0) -> ControlCommand:
    return ControlCommand(command_id=f"{action}-{reason}", scope="ALL", action=action, operator="ops@test",
                          reason=reason, ts_issued_ns=issued_ns, dead_man_timeout_s=timeout_s)


def test_kill_and_resume_fold_to_the_first_engaging_reason() -> None:
    state = SafetyControls()
    state.apply(_command("KILL", "exchange outage"), 0)
    state.apply(_command("KILL", "second opinion"), 1)  # already engaged: the first reason and id stay
    assert (state.kill_reason, state.kill_command_id) == ("exchange outage (ops@test)", "KILL-exchange outage")
    state.apply(_command("RESUME", "outage over"), 2)
    assert (state.kill_reason, state.kill_command_id, state.applied) == (None, None, 3)


def test_the_dead_man_switch_fires_by_the_readers_clock_not_the_issuers() -> None:
    state = SafetyControls()
    state.apply(_command("ARM_DEAD_MAN", timeout_s=2.0, issued_ns=10**18), 100 * S)  # the issuer's clock is far off
    assert state.dead_man_due(102 * S) is None  # exactly the timeout: not yet
    state.apply(_command("HEARTBEAT", issued_ns=0), 101 * S)
    assert state.dead_man_due(103 * S) is None
    assert state.dead_man_due(103 * S + 1) == "dead-man switch: no heartbeat for 2.0 s (timeout 2 s)"
    state.apply(_command("KILL", "dead-man switch: no heartbeat"), 104 * S)
    assert state.dead_man_due(200 * S) is None  # once killed it has nothing more to do
    state.apply(_command("RESUME"), 300 * S)  # still armed: the heartbeats get one timeout again
    assert state.dead_man_due(302 * S) is None and state.dead_man_due(302 * S + 1) is not None
    state.apply(_command("DISARM_DEAD_MAN"), 303 * S)
    assert state.dead_man_due(10_000 * S) is None


def test_an_arm_without_a_positive_timeout_arms_nothing_and_the_cli_refuses_it() -> None:
    state = SafetyControls()
    for timeout in (None, 0.0, -1.0, float("nan")):
        state.apply(_command("ARM_DEAD_MAN", timeout_s=timeout), 0)
    assert state.dead_man_timeout_ns is None and state.dead_man_due(10**12) is None
    with pytest.raises(LiqbotError, match="needs --timeout SECONDS > 0"):
        new_command("ARM_DEAD_MAN", "night shift", "ops@test", timeout_s=0)
    with pytest.raises(LiqbotError, match="say why with --reason"):
        new_command("KILL", "  ", "ops@test")


def test_the_kill_switch_cancels_every_symbol_once_and_clears() -> None:
    """SYNTHETIC scenario records fold into a decide step; the switch then cancels each symbol at its event time."""
    step = DecideStep(StrategyConfig(), AccountRisk(100_000.0))
    scenario = generate(WickScenario(seed=3, symbols=("WICKUSDT", "DIPUSDT"), duration_s=400, bursts=1))
    for record in scenario.market_records():
        step.on_record(record)
    newest = {s.symbol: s.risk.heartbeat_ns for s in step.symbols.values()}
    cancels = step.on_kill("desk says stop (ops@test)", "c1", now_ns=1)
    assert all(isinstance(c, OrderCancel) for c in cancels)
    assert sorted((c.symbol, c.ts_event_ns, c.event_id, c.reason) for c in cancels if isinstance(c, OrderCancel)) == [
        (s, newest[s], f"synthetic:{s}:kill:c1", "kill switch: desk says stop (ops@test)") for s in sorted(newest)]
    assert step.account.kill_switch == "desk says stop (ops@test)"
    assert step.on_kill("desk says stop (ops@test)", "c1", now_ns=2) == []  # in force already: nothing again
    assert step.on_kill(None, None, now_ns=3) == [] and step.account.kill_switch is None


def _cli(settings: Settings, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": settings.kafka.topic_prefix, "LIQBOT_HOME": str(home),
           "LIQBOT_PARTITIONS": str(settings.kafka.partitions), "LIQBOT_OPERATOR": "ops@test"}
    return subprocess.run([sys.executable, "-m", "liqbot.cli", "control", *args, "--bootstrap",
                           settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


def _control_log(settings: Settings) -> list[tuple[ControlCommand, int]]:
    """Every command on the control topic so far, in order, with its Kafka timestamp (ms)."""
    return [(r, ms) for r, ms in _topic_log(settings, "control") if isinstance(r, ControlCommand)]


def _topic_log(settings: Settings, name: str) -> list[tuple[Any, int]]:
    serde, topic = make_serde(settings.serde), TopicRegistry(settings.kafka).name(name)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "control-test",
                         "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p, 0) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        consumer.assign(parts)
        out: list[tuple[Any, int]] = []
        seen = {p: 0 for p in ends}
        deadline = time.monotonic() + 30
        while any(seen[p] < end for p, end in ends.items()) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            seen[message.partition() or 0] = (message.offset() or 0) + 1
            out.append((serde.decode(topic, message.value() or b""), message.timestamp()[1]))
        return out
    finally:
        consumer.close()


def _wait(condition: Any, timeout_s: float, what: str, worker: Any) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; worker log:\n{worker.tail()}"
        time.sleep(0.05)


def test_a_worker_obeys_the_kill_switch_within_a_second_and_refuses_intents_until_resumed(
        settings: Settings, workers: Any, collectors: Any, tmp_path: Path) -> None:  # noqa: F811
    first = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT"), duration_s=700, bursts=3))
    feed(settings, list(first.records))
    out = collectors(settings, ["orders.intents", "orders.cancels", "predictions"])
    worker = workers(settings, "kill", "--models", str(SCENARIO_REGISTRY))
    out.wait(lambda: out.count("orders.intents") > 0, 120, "an intent before the kill", worker)
    # every record of the first scenario read (a quiet spell alone may be a loaded host's stall), then its outputs
    _wait(lambda: (worker.status().get("counts") or {}).get("consumed", 0) >= len(first.records), 120,
          "the first scenario read", worker)
    out.settle(["orders.intents", "predictions"], quiet_s=3)
    intents_before = out.count("orders.intents")

    done = _cli(settings, tmp_path / "ops", "kill", "--reason", "venue maintenance")
    assert done.returncode == 0, done.stderr
    assert "KILL sent by ops@test (venue maintenance)" in done.stderr
    reason = "kill switch: venue maintenance (ops@test)"
    out.wait(lambda: any(c.reason == reason for c in out.by_topic.get("orders.cancels", {}).values()), 10,
             "the kill switch's cancels", worker)
    (kill, kill_ms), = [(c, ms) for c, ms in _control_log(settings) if c.action == "KILL"]
    assert (kill.operator, kill.reason) == ("ops@test", "venue maintenance")
    stamps = {c.event_id: ms for c, ms in _topic_log(settings, "orders.cancels")}
    kill_cancels = [c for c in out.by_topic["orders.cancels"].values() if isinstance(c, OrderCancel)
                    and c.reason == reason]
    assert {c.symbol for c in kill_cancels} == {"WICKUSDT", "SPIKEUSDT"}
    obeyed_ms = [stamps[c.event_id] - kill_ms for c in kill_cancels]
    assert max(obeyed_ms) <= 1000, obeyed_ms  # command produced -> the worker's cancels produced
    _wait(lambda: (worker.status().get("controls") or {}).get("kill_switch") == "venue maintenance (ops@test)", 5,
          "the status to show the kill switch", worker)

    # more liquidations while killed: predictions, and every decision refused by the kill switch
    second = generate(WickScenario(seed=6, symbols=("DIPUSDT",), duration_s=700, bursts=3))
    feed(settings, list(second.records), paced_s=0.5)  # the worker reads while it is written, as from ingest
    out.wait(lambda: any(p.symbol == "DIPUSDT" for p in out.by_topic.get("predictions", {}).values()), 60,
             "the second scenario's predictions", worker)
    out.settle(["predictions", "orders.intents"], quiet_s=3)
    assert worker.status()["steps"]["features"].get("late:liqbot.Liquidation", 0) == 0  # the pacing held
    assert out.count("orders.intents") == intents_before
    assert not [i for i in out.by_topic["orders.intents"].values() if isinstance(i, OrderIntent)
                and i.symbol == "DIPUSDT"]
    _wait(lambda: worker.status()["steps"]["decide"].get("refused:kill_switch", 0) > 0, 5,
          "decisions refused by the kill switch", worker)

    done = _cli(settings, tmp_path / "ops", "resume", "--reason", "maintenance over")
    assert done.returncode == 0, done.stderr
    _wait(lambda: (worker.status().get("controls") or {}).get("kill_switch", "x") is None, 5, "the resume", worker)
    status = _cli(settings, tmp_path / "ops", "status", "--json")
    report = json.loads(status.stdout)
    assert report["kill_switch"] is None
    assert [(c["action"], c["operator"], c["reason"]) for c in report["commands"]] == [
        ("KILL", "ops@test", "venue maintenance"), ("RESUME", "ops@test", "maintenance over")]


def test_the_dead_man_switch_fires_in_the_worker_when_heartbeats_stop(
        settings: Settings, workers: Any, collectors: Any, tmp_path: Path) -> None:  # noqa: F811
    scenario = generate(WickScenario(seed=7, symbols=("WICKUSDT",), duration_s=400, bursts=1))
    feed(settings, list(scenario.records))
    out = collectors(settings, ["orders.cancels"])
    worker = workers(settings, "dead-man", "--models", str(SCENARIO_REGISTRY))
    worker.wait_for_partitions(settings.kafka.partitions)
    assert _cli(settings, tmp_path / "ops", "arm", "--timeout", "2", "--reason", "night shift").returncode == 0
    clients = Clients.connect(settings)
    for _ in range(6):  # heartbeats keep it quiet for 3 s, longer than its timeout
        send_command(clients, new_command("HEARTBEAT", "heartbeat", "ops@test"))
        time.sleep(0.5)
    _wait(lambda: any(c.action == "KILL" for c, _ in _control_log(settings)), 10,
          "the dead-man switch's audit record", worker)
    log = _control_log(settings)
    (kill, kill_ms), = [(c, ms) for c, ms in log if c.action == "KILL"]
    last_heartbeat_ms = max(ms for c, ms in log if c.action == "HEARTBEAT")
    assert kill.operator.startswith("dead-man@") and kill.operator.endswith(f":{worker.process.pid}")
    assert kill.reason.startswith("dead-man switch: no heartbeat for 2.")
    assert 2000 <= kill_ms - last_heartbeat_ms <= 3000, kill_ms - last_heartbeat_ms  # the timeout, then a tick
    out.wait(lambda: any(c.reason.startswith("kill switch: dead-man switch") for c in
                         out.by_topic.get("orders.cancels", {}).values()), 10, "the dead-man's cancels", worker)
