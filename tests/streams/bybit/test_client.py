"""The live connector against a loopback Bybit peer serving the real capture, into the real broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from schemas.records import AvroRecord, BookUpdate, DeadLetter, TopOfBook, Trade
from streams.bybit.client import BybitPublicClient, BybitStreamConfig
from streams.bybit.loopback import Faults, LoopbackBybit
from streams.capture import read_capture
from streams.clients import Clients
from streams.ingest import Ingestor, IngestStats, KafkaSink
from streams.websocket import ReconnectPolicy

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "STRKUSDT", "ADAUSDT")
NORMAL = {"liqbot.Trade": 327, "liqbot.BookUpdate": 1598, "liqbot.TopOfBook": 1598, "liqbot.Ticker": 758,
          "liqbot.Liquidation": 5}


@pytest.fixture(scope="module")
def frames(bybit_capture: Path, liquidation_frames: Path) -> list[str]:
    """The real linear connection's data frames, with the four real allLiquidation frames in front."""
    linear = [f.data for f in read_capture(bybit_capture)
              if f.kind == "recv" and f.venue == "bybit-linear" and '"topic"' in f.data]
    return liquidation_frames.read_text().splitlines() + linear


@dataclass
class Run:
    stats: IngestStats
    client: BybitPublicClient
    server: LoopbackBybit
    records: dict[str, list[AvroRecord]]


def _run(clients: Clients, frames: list[str], faults: Faults | None = None, *, silence_s: float = 5.0,
         extra_topics: tuple[str, ...] = ()) -> Run:
    ingestor = Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters)
    config = BybitStreamConfig(symbols=SYMBOLS, url="", book_depth=200, kline=True, ping_interval_s=0.3,
                               policy=ReconnectPolicy(silence_timeout_s=silence_s, backoff_initial_s=0.05,
                                                      backoff_max_s=0.2))

    async def scenario() -> tuple[BybitPublicClient, LoopbackBybit]:
        server = LoopbackBybit(frames, faults)
        await server.start()
        client = BybitPublicClient(BybitStreamConfig(**{**config.__dict__, "url": server.url}), ingestor.on_frame)
        client.topics += list(extra_topics)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        await _drained(server, ingestor, len(frames))
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.stop()
        return client, server

    client, server = asyncio.run(scenario())
    assert clients.producer.flush(30) == 0
    return Run(ingestor.stats, client, server, _read_back(clients))


async def _drained(server: LoopbackBybit, ingestor: Ingestor, total: int) -> None:
    """Until everything is served and the client has handled its socket's backlog (pongs aside)."""
    def handled() -> int:
        return sum(ingestor.stats.frames.values()) - ingestor.stats.frames["control"]

    last, since = -1, time.monotonic()
    while server.cursor < total or time.monotonic() - since < 0.7:
        await asyncio.sleep(0.05)
        if handled() != last:
            last, since = handled(), time.monotonic()


def _read_back(clients: Clients) -> dict[str, list[AvroRecord]]:
    names = [clients.topics.name(s) for s in clients.topics.specs]
    consumer = clients.consumer(names, f"g-{uuid.uuid4().hex[:8]}")
    records: dict[str, list[AvroRecord]] = {}
    for got in consumer.records(idle_timeout_s=4):
        records.setdefault(got.record.SCHEMA, []).append(got.record)
    consumer.close()
    return records


def _counts(run: Run) -> dict[str, int]:
    return {k: len(v) for k, v in run.records.items() if k != "liqbot.DeadLetter"}


def test_normal_streaming_delivers_every_record_in_order(clients: Clients, frames: list[str]) -> None:
    run = _run(clients, frames)
    assert _counts(run) == NORMAL
    assert run.client.reconnects == 0 and run.stats.errors == 0 and "liqbot.DeadLetter" not in run.records
    expected = [json.loads(f)["data"] for f in frames if '"publicTrade.BTCUSDT"' in f]
    btc = [t for t in run.records["liqbot.Trade"] if isinstance(t, Trade) and t.symbol == "BTCUSDT"]
    assert [t.event_id for t in btc] == [item["i"] for batch in expected for item in batch]
    subscribed = [a for r in run.server.requests if r["op"] == "subscribe" for a in r["args"]]
    assert len(subscribed) == 30 and all(len(r.get("args", [])) <= 10 for r in run.server.requests)


def _after_one_reconnect(run: Run) -> None:
    """Everything once, plus the fresh snapshot of each of the four books that a new connection brings."""
    assert _counts(run) == {**NORMAL, "liqbot.BookUpdate": 1598 + 4, "liqbot.TopOfBook": 1598 + 4}
    kinds = Counter(b.update_type for b in run.records["liqbot.BookUpdate"] if isinstance(b, BookUpdate))
    assert kinds == {"SNAPSHOT": 8, "DELTA": 1594} and run.stats.gaps == 0


def _reconnects_metric() -> float:
    return REGISTRY.get_sample_value("liqbot_reconnects_total", {"venue": "bybit-linear"}) or 0.0


def test_dropped_connection_reconnects_and_loses_nothing(clients: Clients, frames: list[str]) -> None:
    before = _reconnects_metric()
    run = _run(clients, frames, Faults(drop_after={1200}))
    assert run.client.reconnects == 1 and run.server.connections == 2
    assert _reconnects_metric() == before + 1
    _after_one_reconnect(run)


def test_silence_past_the_deadline_reconnects(clients: Clients, frames: list[str]) -> None:
    run = _run(clients, frames, Faults(silent_after={800}), silence_s=1.0)
    assert run.client.reconnects == 1 and run.server.connections == 2
    _after_one_reconnect(run)
    pings = [r for r in run.server.requests if r["op"] == "ping"]
    assert pings, "the client pings while it waits"


def test_garbage_and_truncated_frames_are_dead_lettered_raw(clients: Clients, frames: list[str]) -> None:
    truncated = frames[150][: len(frames[150]) // 2]
    run = _run(clients, frames, Faults(inject_before={100: "\x00\x01 not json", 200: truncated, 300: '["op"]'}))
    assert _counts(run) == NORMAL and run.client.reconnects == 0
    letters = [r for r in run.records["liqbot.DeadLetter"] if isinstance(r, DeadLetter)]
    assert sorted(letter.raw for letter in letters) == sorted([b"\x00\x01 not json", truncated.encode(), b'["op"]'])
    assert all(letter.stage == "parse" for letter in letters)
    errors = {letter.raw: letter.error for letter in letters}
    assert errors[b'["op"]'] == "frame is a JSON list, expected an object"
    assert errors[truncated.encode()].startswith("frame is not JSON")
    assert run.stats.errors == 3


def test_book_gap_resyncs_from_a_fresh_snapshot(clients: Clients, frames: list[str]) -> None:
    btc_book = [i for i, f in enumerate(frames) if '"orderbook.200.BTCUSDT"' in f and '"delta"' in f]
    run = _run(clients, frames, Faults(skip={btc_book[100]}))
    assert run.stats.gaps == 1
    assert (REGISTRY.get_sample_value("liqbot_book_gaps_total", {"venue": "bybit-linear"}) or 0) >= 1
    ops = [(r["op"], r["args"]) for r in run.server.requests if r.get("args") == ["orderbook.200.BTCUSDT"]]
    assert ops == [("unsubscribe", ["orderbook.200.BTCUSDT"]), ("subscribe", ["orderbook.200.BTCUSDT"])]
    btc = [b for b in run.records["liqbot.BookUpdate"] if isinstance(b, BookUpdate) and b.symbol == "BTCUSDT"]
    kinds = [b.update_type for b in btc]
    assert Counter(kinds)["RESYNC"] == 1 and Counter(kinds)["SNAPSHOT"] == 2
    assert kinds[kinds.index("RESYNC") + 1] == "SNAPSHOT"  # nothing built across the gap
    tops = [t for t in run.records["liqbot.TopOfBook"] if isinstance(t, TopOfBook) and t.symbol == "BTCUSDT"]
    normal_last = ("65114.20", "5.974", "65114.30", "9.060")  # the capture's final BTCUSDT top of book
    assert (tops[-1].bid_price, tops[-1].bid_size, tops[-1].ask_price, tops[-1].ask_size) == normal_last


def test_repeated_liquidation_frame_is_dropped(clients: Clients, frames: list[str]) -> None:
    run = _run(clients, frames, Faults(repeat={1}))
    assert run.stats.repeated_frames == 1 and _counts(run) == NORMAL


def test_refused_subscription_is_reported(clients: Clients, frames: list[str]) -> None:
    run = _run(clients, frames, extra_topics=("bogusChannel.BTCUSDT",))
    assert run.client.failed_subscriptions == ["error:handler not found,topic:bogusChannel.BTCUSDT"]
    assert _counts(run) == NORMAL
