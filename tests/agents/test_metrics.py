"""An agents worker process's Prometheus metrics (docs/metrics.md), scraped over HTTP on the real broker.

Market records: the real Bybit capture with SYNTHETIC liquidations at its trades (as in test_workers.py), and the
SYNTHETIC wick scenario with the model fitted on it, which drives the order path to fills and positions. Every
value is checked against what the worker's status file, its output topics or the input itself say.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from decision.ids import exit_order_id
from deploy.kafka.broker import free_port
from liqbot import __version__
from liqbot.children import WorkerProcess
from liqbot.config import Settings
from liqbot.data import BYBIT_CAPTURE
from schemas.records import AvroRecord, Instrument, Liquidation, OrderEvent, OrderIntent, Position
from streams.bybit.private_loopback import LoopbackBybitPrivate
from streams.bybit.signing import Credentials
from streams.capture_replay import capture_records
from streams.clients import Clients
from streams.topics import TOPICS
from tests.agents.test_workers import collectors, feed, late, with_synthetic_liquidations, workers  # noqa: F401
from tests.metrics_contract import Families, by_label, drift, scrape, scrape_until, value
from training.registry import SCENARIO_REGISTRY
from training.scenario import WickScenario, generate

TOPIC_OF = {spec.schema: spec.name for spec in TOPICS}
OUTPUTS = ["features", "predictions", "orders.intents", "orders.events", "positions"]
STARTING_EQUITY = 100_000.0


def _market() -> list[AvroRecord]:
    """The scenario (January 2026) first, then the capture (later): each topic partition in event-time order."""
    scenario = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900, bursts=4))
    return [*scenario.records,
            *with_synthetic_liquidations(capture_records(BYBIT_CAPTURE, "bybit-linear"), every=10)]


def _quiet_status(worker: WorkerProcess) -> dict[str, Any]:
    """The status once two successive files agree on what the agents applied (the worker is idle)."""
    last: dict[str, Any] = {}
    while True:
        time.sleep(1.5)  # the status file is rewritten every second
        status = worker.status()
        if status["applied"] and status["applied"] == last.get("applied"):
            return status
        last = status


def _expected_book(intents: dict[str, OrderIntent], events: list[OrderEvent]) -> tuple[Counter[tuple[str, str]],
                                                                                        dict[tuple[str, str], float]]:
    """From the topics alone: resting orders and signed entry notional of open positions per (venue, symbol)."""
    statuses: dict[str, set[str]] = defaultdict(set)
    for event in events:
        statuses[event.client_order_id].add(event.status)
    resting: Counter[tuple[str, str]] = Counter()
    notional: dict[tuple[str, str], float] = defaultdict(float)
    for client_id, intent in intents.items():
        entry, key = statuses[client_id], (intent.venue, intent.symbol)
        if entry & {"REJECTED", "EXPIRED", "CANCELLED"}:
            continue
        if "FILLED" not in entry:
            resting[key] += 1
        elif "FILLED" not in statuses[exit_order_id(client_id)]:
            direction = 1 if intent.side == "BUY" else -1
            notional[key] += float(direction * Decimal(intent.price) * Decimal(intent.size))
    return resting, notional


def _expected_pnl(positions: list[Position]) -> float:
    """Net PnL of the newest position of every symbol, as decide's account folds them."""
    newest: dict[tuple[str, str], Position] = {}
    for p in sorted(positions, key=lambda p: p.ts_event_ns):
        newest[(p.venue, p.symbol)] = p
    return sum(p.realised_pnl - p.fees_paid - p.funding_paid + p.unrealised_pnl for p in newest.values())


def _dead_letter_a_trade(settings: Settings) -> str:
    """A payload on market.trades that is no Avro record; returns the topic's name."""
    clients = Clients.connect(settings)
    topic = clients.topics.name("market.trades")
    clients.producer.send_raw(topic, b"\x00\x00\x00\x00\x01 not an avro record", "BTCUSDT")
    clients.producer.drain()
    return topic


def _counts_by_topic(records: list[AvroRecord], settings: Settings) -> Counter[str]:
    return Counter(settings.kafka.topic_prefix + TOPIC_OF[r.SCHEMA] for r in records)


def test_the_worker_serves_what_it_did_and_holds(settings: Settings, workers: Any, collectors: Any,  # noqa: F811
                                                 tmp_path: Path) -> None:
    records = _market()
    models = tmp_path / "models"
    shutil.copytree(SCENARIO_REGISTRY, models)
    version = (models / "CURRENT").read_text().strip()
    feed(settings, records)
    trades_topic = _dead_letter_a_trade(settings)
    out = collectors(settings, OUTPUTS)
    port = free_port()
    worker = workers(settings, "metrics", "--models", str(models), "--metrics-port", str(port),
                     "--model-refresh", "1")
    liquidations = sum(isinstance(r, Liquidation) for r in records)
    out.wait(lambda: out.count("features") + late(worker) >= liquidations, 180, "every decision point", worker)
    # past the market dead-man's 10 s of silence (and its 1 s timer): its cancels and their events come in here,
    # not between this settle and the scrape
    out.settle(OUTPUTS, quiet_s=12)
    before = _quiet_status(worker)
    families, _ = scrape(port)
    time.sleep(1.5)
    after = worker.status()

    assert drift(port, "Agents worker") == []
    assert value(families, "liqbot_build_info", process="agents", version=__version__) == 1
    assert trades_topic == settings.kafka.topic_prefix + "market.trades"
    _check_flows(families, before, _counts_by_topic(records, settings), settings.kafka.topic_prefix, out)
    _check_model_and_decisions(families, before, out, version)
    _check_book_and_account(families, out)
    for chain, pauses in before["snapshots"].items():
        count = value(families, "liqbot_snapshot_seconds_count", agent=chain)
        assert pauses["count"] <= count <= after["snapshots"][chain]["count"]
    assert before["gc"], "no garbage collection timed"
    for generation, pauses in before["gc"].items():
        count = value(families, "liqbot_gc_pause_seconds_count", generation=generation.removeprefix("gen"))
        assert pauses["count"] <= count <= after["gc"][generation]["count"]

    _check_a_broken_model_is_refused_and_counted(port, models, version)


def _check_flows(families: Families, status: dict[str, Any], fed: Counter[str], prefix: str, out: Any) -> None:
    """Records in and out per agent and topic, errors, consumed, dead letters, the sampled process time."""
    trades_topic = prefix + "market.trades"
    for agent, applied in status["applied"].items():
        by_topic = {s.labels["topic"]: s.value for s in families["liqbot_agent_records_in"]
                    if s.name == "liqbot_agent_records_in_total" and s.labels["agent"] == agent}
        assert sum(by_topic.values()) == applied, agent
        # one record in 64 per topic is timed
        assert value(families, "liqbot_agent_process_seconds_count", agent=agent) == sum(
            n // 64 for n in by_topic.values()), agent
    for topic in ("market.trades", "market.liquidations", "market.top_of_book", "market.book", "market.tickers"):
        name = prefix + topic
        assert value(families, "liqbot_agent_records_in_total", agent="features", topic=name) == fed[name], topic
        assert value(families, "liqbot_records_consumed_total", topic=name) == fed[name], topic
    for agent, topic in (("features", "features"), ("predict", "predictions"), ("decide", "orders.intents"),
                         ("execute", "orders.events")):
        assert value(families, "liqbot_agent_records_out_total", agent=agent, topic=prefix + topic) == out.count(
            topic), topic
    assert by_label(families, "liqbot_agent_errors_total", "agent") == {
        "features": 1, "predict": 0, "decide": 0, "execute": 1}  # the two agents that read market.trades
    assert value(families, "liqbot_dead_letters_total", source=trades_topic, stage="agent-decode") == 1
    assert value(families, "liqbot_serde_errors_total", topic=trades_topic, stage="decode") == 1
    assert status["counts"]["consumed"] == sum(by_label(families, "liqbot_records_consumed_total", "topic").values())


def _check_model_and_decisions(families: Families, status: dict[str, Any], out: Any, version: str) -> None:
    assert [(s.labels, s.value) for s in families["liqbot_model_info"]] == [({"version": version}, 1.0)]
    assert value(families, "liqbot_model_load_failures_total") == 0
    predicted = status["steps"]["predict"]["predicted"]
    assert predicted == out.count("predictions") > 0
    assert value(families, "liqbot_model_inference_seconds_count") == predicted
    intents = out.by_topic["orders.intents"]
    assert {i.venue for i in intents.values()} == {"synthetic", "bybit-linear"}, status["steps"]["decide"]
    by_venue = Counter(i.venue for i in intents.values())
    assert by_label(families, "liqbot_exchange_to_decision_seconds_count", "venue") == by_venue
    refused = {k.removeprefix("refused:"): v for k, v in status["steps"]["decide"].items() if k.startswith("refused:")}
    assert refused, f"no risk refusal; decide counts: {status['steps']['decide']}"
    assert by_label(families, "liqbot_risk_refusals_total", "reason") == refused
    refusing = status["steps"]["decide"].get("risk_gate", 0) + status["steps"]["decide"].get("risk_order", 0)
    assert sum(refused.values()) >= refusing > 0  # a refusal names each rule that refused


def _check_book_and_account(families: Families, out: Any) -> None:
    intents = out.by_topic["orders.intents"]
    events = list(out.by_topic.get("orders.events", {}).values())
    resting, notional = _expected_book(intents, events)
    gauged = {(s.labels["venue"], s.labels["symbol"]): s.value for s in families["liqbot_open_orders"]}
    assert {(i.venue, i.symbol) for i in intents.values()} <= set(gauged)
    assert gauged == {key: float(resting.get(key, 0)) for key in gauged}
    positions = {(s.labels["venue"], s.labels["symbol"]): s.value for s in families["liqbot_position_notional_quote"]}
    assert positions == pytest.approx({key: notional.get(key, 0.0) for key in positions})
    assert {s.value for s in families["liqbot_circuit_breaker_open"]} <= {0.0, 1.0}

    fills = list(out.by_topic.get("positions", {}).values())
    assert fills, f"no position: the wick scenario must fill orders; {Counter(e.status for e in events)}"
    pnl = _expected_pnl(fills)
    assert value(families, "liqbot_pnl_quote") == pytest.approx(pnl, abs=1e-6)
    assert value(families, "liqbot_equity_quote") == pytest.approx(STARTING_EQUITY + pnl, abs=1e-6)
    drawdown = value(families, "liqbot_drawdown_ratio")
    assert 0.0 <= drawdown < 0.10
    assert value(families, "liqbot_trading_halted") == 0.0
    assert value(families, "liqbot_kill_switch_engaged") == 0.0
    assert families["liqbot_trading_halted"] and families["liqbot_kill_switch_engaged"]  # fed, not just declared


def _check_a_broken_model_is_refused_and_counted(port: int, models: Path, version: str) -> None:
    """A new CURRENT whose file does not match its version: each refresh refuses it, the old model keeps serving."""
    broken = "0123456789abcdef"
    shutil.copytree(models / version, models / broken)
    (models / "CURRENT").write_text(broken + "\n")
    families = scrape_until(port, lambda f: value(f, "liqbot_model_load_failures_total") >= 2, timeout_s=30)
    assert [(s.labels, s.value) for s in families["liqbot_model_info"]] == [({"version": version}, 1.0)]



def test_live_execution_is_counted_and_leaves_the_unfed_account_gauges_empty(
        settings: Settings, workers: Any, collectors: Any, peer_in_thread: Any) -> None:  # noqa: F811
    """`--live` against the loopback Bybit (SYNTHETIC wick scenario relabelled bybit-linear, as in test_workers.py):
    the live execute agent's records, and no equity, PnL or drawdown, since Bybit's positions are not fed back."""
    key, secret = f"LQKEY{uuid.uuid4().hex[:14]}", f"LQSECRET{uuid.uuid4().hex}"
    scenario = generate(WickScenario(seed=5, symbols=("WICKUSDT", "SPIKEUSDT", "DIPUSDT"), duration_s=900, bursts=4))
    records: list[Any] = [replace(r, venue="bybit-linear") for r in scenario.records]
    instruments = [r for r in records if isinstance(r, Instrument)]
    topics = ["orders.intents", "orders.events"]
    port = free_port()
    with peer_in_thread(LoopbackBybitPrivate(Credentials(key, secret), instruments)) as bybit:
        feed(settings, records)
        out = collectors(settings, topics)
        worker = workers(settings, "live", "--models", str(SCENARIO_REGISTRY), "--live", "--live-rest-url",
                         bybit.rest_url, "--live-ws-url", bybit.ws_url, "--metrics-port", str(port),
                         env={"LIQBOT_BYBIT_API_KEY": key, "LIQBOT_BYBIT_API_SECRET": secret})
        out.wait(lambda: out.count("orders.intents") > 0 and out.count("orders.events") >= out.count(
            "orders.intents"), 120, "live order events", worker)
        out.settle(topics, quiet_s=6)
        intents = out.count("orders.intents")
        prefix = settings.kafka.topic_prefix
        families = scrape_until(port, lambda f: value(
            f, "liqbot_agent_records_in_total", agent="execute", topic=prefix + "orders.intents") == intents)
        problems = drift(port, "Agents worker")
        worker.stop()
    assert problems == []
    assert value(families, "liqbot_agent_records_in_total", agent="execute",
                 topic=prefix + "market.instruments") == len(instruments)
    # Bybit reports an acceptance twice (REST reply and stream): one event id, sent twice
    assert value(families, "liqbot_agent_records_out_total", agent="execute",
                 topic=prefix + "orders.events") >= out.count("orders.events")
    assert value(families, "liqbot_agent_errors_total", agent="execute") == 0
    assert sum(by_label(families, "liqbot_exchange_to_decision_seconds_count", "venue").values()) == intents
    assert {s.labels["venue"] for s in families["liqbot_open_orders"]} == {"bybit-linear"}
    for unfed in ("liqbot_equity_quote", "liqbot_pnl_quote", "liqbot_drawdown_ratio"):
        assert families[unfed] == [], unfed  # declared, never a made-up constant
    assert value(families, "liqbot_trading_halted") == 0 and value(families, "liqbot_kill_switch_engaged") == 0
