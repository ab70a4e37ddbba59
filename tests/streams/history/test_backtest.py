"""History replay (`streams/history/backtest.py`) on chDB's real engine: the real captures and the SYNTHETIC wick
scenario landed as the sink writes them, replayed, and compared with the live steps fed the same records in memory
in the order of the agents' own merge (`EventTimeMerge`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import pytest
from clickhouse_connect.driver.client import Client

from agents.chain import Step, chains
from agents.steps import decide_step, execute_step, features_step, predict_step
from decision.ids import exit_order_id
from decision.latency import LognormalLatency
from decision.paper import PaperConfig
from decision.pipeline import PredictStep
from decision.queue import QueueModel
from decision.strategy import StrategyConfig
from liqbot.errors import LiqbotError
from schemas.records import AvroRecord, FeatureVector, OrderEvent, OrderIntent, Position, Prediction
from streams.history.backtest import (
    BacktestConfig,
    Progress,
    Replay,
    canonical,
    read_history,
    replay,
    replay_history,
    result_hash,
)
from streams.history.columns import columns_for
from streams.history.reader import STATE_TOPICS, HistoryRange
from streams.history.results import RESULT_TABLES, ensure_new, manifest_of, run_records, write_run
from streams.history.store import connect
from streams.merge import EventTimeMerge
from streams.topics import TOPICS
from tests.streams.history.conftest import WICK, LandedHistory
from training.onnx_model import ModelLoadError
from training.registry import SCENARIO_REGISTRY, ModelRegistry
from training.serving import ServedModel

EQUITY = 100_000.0
# Every symbol of the real captures' trading venues, and a range around all of them (2024-01-01 to 2027-01-01)
REAL = HistoryRange(namespace="real.", from_ns=1_704_067_200 * 10**9, to_ns=1_798_761_600 * 10**9,
                    symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "ADAUSDT", "STRKUSDT"))
SCENARIO = HistoryRange(namespace="wick.", from_ns=WICK.start_ns, to_ns=WICK.end_ns + 10**9,
                        symbols=WICK.symbols)
_TOPIC_OF = {spec.schema: spec.name for spec in TOPICS}
_TABLE_OF = {spec.name: spec.table for spec in TOPICS}


@pytest.fixture(scope="module")
def client(landed_history: LandedHistory) -> Iterator[Client]:
    made = connect(landed_history.settings)
    yield made
    made.close()  # chDB opens one directory per process at a time


def _real_model() -> ServedModel:
    return ServedModel(ModelRegistry())


def _scenario_model() -> ServedModel:
    return ServedModel(ModelRegistry(SCENARIO_REGISTRY))


def _in_range(span: HistoryRange, topic: str, record: Any) -> bool:
    start = 0 if topic in STATE_TOPICS else span.from_ns
    return record.symbol in span.symbols and start <= record.ts_event_ns < span.to_ns


def in_memory(landed: LandedHistory, span: HistoryRange, served: ServedModel) -> tuple[dict[str, int], list[Any]]:
    """The live steps, joined as the worker joins them, fed each partition's records of the range in the order the
    agents' merge releases them: rows per table, and everything the steps made."""
    steps: list[Step[Any]] = [features_step(), predict_step(PredictStep(lambda: served.scorer)),
                              decide_step(StrategyConfig(), EQUITY), execute_step(EQUITY)]
    (chain,) = chains(steps, lambda record: _TOPIC_OF[record.SCHEMA])
    merges: dict[int, EventTimeMerge[AvroRecord]] = {}
    rows: dict[str, int] = {}
    for (topic, partition), records in sorted(landed.sources[span.namespace].items()):
        if topic not in chain.inputs:
            continue
        merge = merges.setdefault(partition, EventTimeMerge())
        for name in chain.inputs:
            merge.add_source(name)
        for offset, record in enumerate(records):
            if _in_range(span, topic, record):
                merge.push(topic, record.ts_event_ns, offset, record)
                rows[_TABLE_OF[topic]] = rows.get(_TABLE_OF[topic], 0) + 1
    made: list[Any] = []
    for _, merge in sorted(merges.items()):
        state = chain.new()
        for record in merge.release(lambda _: True):
            made += chain.handle(state, record)
    return dict(sorted(rows.items())), made


def _of(kind: type[AvroRecord], records: list[Any]) -> list[bytes]:
    return sorted(canonical(r) for r in records if isinstance(r, kind))


def _made(result: Replay) -> list[Any]:
    out = result.outputs
    return [*out.vectors, *out.predictions, *(r for _, r in out.intents), *(r for _, r in out.events),
            *(r for _, r in out.positions)]


def _count(client: Client, span: HistoryRange) -> dict[str, int]:
    """Rows of the range per table, counted by SQL of the test's own."""
    counts = {}
    for topic in ("market.liquidations", "market.trades", "market.book", "market.top_of_book", "market.tickers",
                  "market.instruments", "market.funding"):
        start = 0 if topic in STATE_TOPICS else span.from_ns
        n = client.query(
            f"SELECT count() FROM {_TABLE_OF[topic]} WHERE _topic = {{t:String}} AND has({{s:Array(String)}}, symbol) "
            "AND toUnixTimestamp64Nano(ts_event_ns) >= {a:Int64} AND toUnixTimestamp64Nano(ts_event_ns) < {b:Int64}",
            parameters={"t": span.namespace + topic, "s": list(span.symbols), "a": start, "b": span.to_ns},
        ).result_rows[0][0]
        if n:
            counts[_TABLE_OF[topic]] = int(n)
    return dict(sorted(counts.items()))


@pytest.fixture(scope="module")
def real_run(client: Client) -> Replay:
    return replay(client, BacktestConfig(span=REAL), _real_model())


@pytest.fixture(scope="module")
def wick_run(client: Client) -> Replay:
    return replay(client, BacktestConfig(span=SCENARIO), _scenario_model())


def test_the_real_capture_reads_every_row_of_its_range_and_the_steps_give_what_they_give_in_memory(
        client: Client, landed_history: LandedHistory, real_run: Replay) -> None:
    rows, made = in_memory(landed_history, REAL, _real_model())
    assert real_run.rows == _count(client, REAL) == rows
    assert sum(rows.values()) > 100_000 and rows["instruments"] > 1  # the Bybit capture's, from before the range
    for kind in (FeatureVector, Prediction, OrderIntent, OrderEvent, Position):
        assert _of(kind, _made(real_run)) == _of(kind, made), kind.__name__
    # the real liquidations are the decision points but one: the frames file holds BTCUSDT's of 2025-03 after its
    # 2026-10 ones, so the merge keeps it behind them and the features skip it as late, as a worker would.
    # ADAUSDT's and STRKUSDT's have no book to score on; the BTCUSDT ones meet no fresh book (the captures' market
    # data are months away from them), so no order is placed
    assert (len(real_run.outputs.vectors), len(real_run.outputs.predictions)) == (4, 2)
    assert real_run.outputs.intents == [] and real_run.result_hash == result_hash([], [])


def test_the_wick_scenario_places_fills_and_exits_orders_as_the_steps_do_in_memory(
        client: Client, landed_history: LandedHistory, wick_run: Replay) -> None:
    """SYNTHETIC market and model: the order path."""
    rows, made = in_memory(landed_history, SCENARIO, _scenario_model())
    assert wick_run.rows == _count(client, SCENARIO) == rows
    out = wick_run.outputs
    assert len(out.intents) > 0 and len(out.events) > len(out.intents) and len(out.fills) > 0
    for kind in (FeatureVector, Prediction, OrderIntent, OrderEvent, Position):
        assert _of(kind, _made(wick_run)) == _of(kind, made), kind.__name__
    reference = [r for r in made if isinstance(r, OrderIntent | OrderEvent)]
    assert wick_run.result_hash == result_hash([r for r in reference if isinstance(r, OrderIntent)],
                                               [r for r in reference if isinstance(r, OrderEvent)])
    assert math.isclose(wick_run.net_pnl, out.equity[-1].net_pnl) and wick_run.fees > 0


def test_the_same_manifest_twice_gives_the_same_hashes_and_the_tables_hold_each_run(client: Client,
                                                                                     wick_run: Replay) -> None:
    again = replay(client, BacktestConfig(span=SCENARIO), _scenario_model())
    assert (again.result_hash, again.input_hash) == (wick_run.result_hash, wick_run.input_hash)
    for run, result in (("wick-1", wick_run), ("wick-2", again)):
        write_run(client, manifest_of(run, result), result)
    intents = cast(list[OrderIntent], run_records(client, "wick-2", "liqbot.OrderIntent"))
    events = cast(list[OrderEvent], run_records(client, "wick-2", "liqbot.OrderEvent"))
    assert result_hash(intents, events) == wick_run.result_hash  # the hash survives ClickHouse's decimals
    assert [canonical(e) for e in events] == [canonical(e) for _, e in again.outputs.events]  # in run order
    runs = client.query("SELECT run, result_hash, input_hash, config_hash, model_version, intents, fills, "
                        "input_rows FROM backtest_runs WHERE run LIKE 'wick-%' ORDER BY run").result_rows
    assert [r[0] for r in runs] == ["wick-1", "wick-2"] and runs[0][1:] == runs[1][1:]
    assert runs[0][4] == ModelRegistry(SCENARIO_REGISTRY).current() and runs[0][7] == wick_run.rows
    counts = {table: client.query(f"SELECT count() FROM {table} WHERE _run = 'wick-1'").result_rows[0][0]
              for table in ("backtest_intents", "backtest_order_events", "backtest_positions", "backtest_fills",
                            "backtest_equity")}
    out = wick_run.outputs
    assert counts == {"backtest_intents": len(out.intents), "backtest_order_events": len(out.events),
                      "backtest_positions": len(out.positions), "backtest_fills": len(out.fills),
                      "backtest_equity": len(out.positions)}
    with pytest.raises(LiqbotError, match=r"backtest run wick-1 exists already .*choose another --run"):
        ensure_new(client, "wick-1")


def test_the_reader_reads_in_bounded_batches_and_the_batch_size_changes_nothing(client: Client,
                                                                                 wick_run: Replay) -> None:
    small = replay(client, BacktestConfig(span=SCENARIO, batch_rows=500), _scenario_model())
    assert (small.result_hash, small.input_hash, small.rows) == (wick_run.result_hash, wick_run.input_hash,
                                                                  wick_run.rows)
    sources = client.query("SELECT _topic, _partition, count() FROM (SELECT _topic, _partition FROM top_of_book "
                           "WHERE _topic = 'wick.market.top_of_book') GROUP BY _topic, _partition").result_rows
    # a page of at most 500 rows at a time per source (the memory a source holds), whatever the range
    assert small.batches["top_of_book"] == sum(math.ceil(n / 500) for *_, n in sources) > 20
    assert wick_run.batches["top_of_book"] == len(sources)


def test_a_history_read_into_memory_first_replays_to_the_same_run(client: Client, wick_run: Replay) -> None:
    """`read_history` then `replay_history` (the benchmark's two timings) is `replay` with its reads done first."""
    history = read_history(client, BacktestConfig(span=SCENARIO))
    assert history.records == wick_run.records and history.batches == wick_run.batches
    again = replay_history(history, BacktestConfig(span=SCENARIO), _scenario_model())
    assert (again.result_hash, again.input_hash, again.rows, again.batches) == (
        wick_run.result_hash, wick_run.input_hash, wick_run.rows, wick_run.batches)
    assert [canonical(e) for _, e in again.outputs.events] == [canonical(e) for _, e in wick_run.outputs.events]


def test_the_input_hash_changes_with_one_stored_value_and_comes_back_with_it(client: Client,
                                                                           real_run: Replay) -> None:
    """The hash is of the rows as stored: one trade's size changed in ClickHouse changes it, restored restores it;
    a range without one symbol hashes otherwise."""
    first = "SELECT min(_offset) FROM trades WHERE _topic = 'real.market.trades' AND symbol = 'BTCUSDT'"
    (offset,), = client.query(first).result_rows
    where = f"_topic = 'real.market.trades' AND symbol = 'BTCUSDT' AND _offset = {offset}"
    config = BacktestConfig(span=REAL)
    assert read_history(client, config).input_hash == real_run.input_hash
    client.command(f"ALTER TABLE trades UPDATE size = size + 1 WHERE {where} SETTINGS mutations_sync = 2")
    try:
        changed = read_history(client, config).input_hash
    finally:
        client.command(f"ALTER TABLE trades UPDATE size = size - 1 WHERE {where} SETTINGS mutations_sync = 2")
    assert changed != real_run.input_hash
    assert read_history(client, config).input_hash == real_run.input_hash
    fewer = BacktestConfig(span=HistoryRange(namespace=REAL.namespace, from_ns=REAL.from_ns, to_ns=REAL.to_ns,
                                             symbols=REAL.symbols[1:]))
    assert read_history(client, fewer).input_hash not in (real_run.input_hash, changed)


def test_progress_is_reported_with_counts_and_event_time(client: Client) -> None:
    seen: list[Progress] = []
    replay(client, BacktestConfig(span=SCENARIO), _scenario_model(), on_progress=seen.append, progress_every_s=0)
    assert len(seen) > 3 and all(p.total == seen[0].total and 0 < p.records <= p.total for p in seen)
    assert [p.records for p in seen] == sorted(p.records for p in seen)
    assert all(SCENARIO.from_ns <= p.ts_event_ns < SCENARIO.to_ns for p in seen)


@pytest.mark.parametrize(("span", "message"), [
    (HistoryRange(namespace="wick.", from_ns=WICK.start_ns, to_ns=WICK.end_ns, symbols=("WICKUSDT", "NOPEUSDT")),
     r"unknown symbol NOPEUSDT: the history under the topic prefix 'wick\.' holds DIPUSDT, SPIKEUSDT, WICKUSDT"),
    (HistoryRange(namespace="wick.", from_ns=10**18, to_ns=10**18 + 10**9, symbols=("WICKUSDT",)),
     r"no market records between 2001-09-09T01:46:40\.000Z and 2001-09-09T01:46:41\.000Z for WICKUSDT \(the history "
     r"holds WICKUSDT from 2026-01-01T01:00:00\.\d{3}Z to .*\); load history with `liqbot sink` or `liqbot pipeline`"),
    (HistoryRange(namespace="nothing.", from_ns=WICK.start_ns, to_ns=WICK.end_ns, symbols=("WICKUSDT",)),
     r"no market records under the topic prefix 'nothing\.' \(--namespace\); prefixes that hold some: 'real\.', "
     r"'wick\.'\. Load history with `liqbot sink` or `liqbot pipeline`"),
])
def test_a_range_without_records_says_what_to_do(client: Client, span: HistoryRange, message: str) -> None:
    with pytest.raises(LiqbotError, match=message):
        replay(client, BacktestConfig(span=span), _scenario_model())


def test_an_unknown_model_version_names_the_versions_there_are() -> None:
    with pytest.raises(ModelLoadError, match=f"no model version feedfacefeedface in {SCENARIO_REGISTRY}; it holds "
                                             f"{ModelRegistry(SCENARIO_REGISTRY).current()}"):
        ServedModel(ModelRegistry(SCENARIO_REGISTRY), pinned="feedfacefeedface")
    pinned = ServedModel(ModelRegistry(SCENARIO_REGISTRY), pinned=ModelRegistry(SCENARIO_REGISTRY).current())
    assert pinned.refresh() is False


def test_the_result_tables_hold_every_field_of_their_records(client: Client) -> None:
    for schema, table in RESULT_TABLES.items():
        rows = client.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                            "AND table = {t:String}", parameters={"t": table}).result_rows
        found = {str(name): str(kind) for name, kind in rows}
        assert [c.name for c in columns_for(schema) if found.get(c.name) != c.clickhouse_type] == [], table
        assert {found["_run"], found["_partition"], found["_seq"]} == {"String", "Int32", "UInt64"}


# Latency and the queue model on (docs/backtest.md, Realism): long enough latencies that they change what fills
REALISTIC = PaperConfig(entry_latency=LognormalLatency(median_ms=150.0, sigma=0.8),
                        cancel_latency=LognormalLatency(median_ms=50.0, sigma=0.5), queue=QueueModel(kind="log_prob"))


def _sequences(result: Replay) -> dict[str, list[tuple[int, bytes]]]:
    """Each kind of output in the order the run made it, with the partition that made it."""
    out = result.outputs
    return {"vectors": [(0, canonical(v)) for v in out.vectors],
            "predictions": [(0, canonical(p)) for p in out.predictions],
            **{kind: [(partition, canonical(r)) for partition, r in records] for kind, records in (
                ("intents", out.intents), ("events", out.events), ("positions", out.positions))}}


def _prefix(cut: Replay, full: Replay) -> dict[str, int]:
    """Asserts each output sequence of the cut run is the start of the full run's; their lengths in the cut run."""
    whole = _sequences(full)
    for kind, made in _sequences(cut).items():
        assert made == whole[kind][:len(made)], kind
    return {kind: len(made) for kind, made in _sequences(cut).items()}


def test_wick_results_up_to_a_cut_do_not_change_with_latency_and_the_queue_model(client: Client) -> None:
    """SYNTHETIC market and model. The history cut by `--to` one second after the second entry fill, while that
    position is open: everything the cut run made is exactly the first part of what the full run made."""
    full = replay(client, BacktestConfig(span=SCENARIO, paper=REALISTIC), _scenario_model())
    assert full.result_hash != replay(client, BacktestConfig(span=SCENARIO), _scenario_model()).result_hash
    entries = [e for _, e in full.outputs.events if e.status == "FILLED" and e.liquidity == "MAKER"]
    assert len(entries) >= 2
    cut_ns = entries[1].ts_event_ns + 10**9
    cut = replay(client, BacktestConfig(span=replace(SCENARIO, to_ns=cut_ns), paper=REALISTIC), _scenario_model())
    lengths = _prefix(cut, full)
    made = [e for _, e in cut.outputs.events]
    assert lengths["intents"] > 0 and any(e.status == "FILLED" for e in made)
    assert len(full.outputs.events) > len(made) and len(full.outputs.intents) > lengths["intents"]
    exits = {e.client_order_id for _, e in full.outputs.events if e.liquidity == "TAKER"}
    open_at_cut = [e for e in made if e.liquidity == "MAKER" and exit_order_id(e.client_order_id) in exits
                   and not any(x.client_order_id == exit_order_id(e.client_order_id) for x in made)]
    assert open_at_cut, "no position open at the cut: the test would not show what it says"


def test_real_results_up_to_a_cut_do_not_change_with_latency_and_the_queue_model(client: Client) -> None:
    """The real captures (no order placed) cut between the two BTCUSDT liquidations of 2026-10-09: the cut run's
    decision points and predictions are the first of the full run's."""
    full = replay(client, BacktestConfig(span=REAL, paper=REALISTIC), _real_model())
    cut_ns = 1_791_565_601_000 * 10**6  # 2026-10-09T17:06:41.000Z
    cut = replay(client, BacktestConfig(span=replace(REAL, to_ns=cut_ns), paper=REALISTIC), _real_model())
    lengths = _prefix(cut, full)
    assert (lengths["vectors"], len(full.outputs.vectors)) == (3, 4)
    assert (lengths["predictions"], len(full.outputs.predictions)) == (1, 2)
    assert cut.records < full.records and full.result_hash == result_hash([], [])
