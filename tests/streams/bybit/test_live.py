"""REST rate limits, and `liqbot record`: a live session and the replay of what it recorded give the same records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.kafka.broker import free_port
from liqbot import __version__
from liqbot.children import LiqbotProcess
from liqbot.config import Settings
from schemas.records import AvroRecord, BookUpdate, FundingRate, Instrument, Ticker, Trade
from streams.bybit.loopback import LoopbackBybit, LoopbackBybitRest
from streams.bybit.parse import BybitPublicParser
from streams.bybit.rest import BybitRest, RestError
from streams.capture import read_capture
from streams.capture_replay import replay_captures
from streams.clients import Clients
from streams.ingest import CountingSink, Ingestor
from streams.topics import TOPICS
from tests.metrics_contract import by_label, drift, scrape_until, value


@pytest.fixture(scope="module")
def instruments_reply(bybit_capture: Path) -> str:
    return next(f.data for f in read_capture(bybit_capture) if f.kind == "http" and f.venue == "bybit-linear")


# Synthetic replies in the shape Bybit documents for these endpoints (no real capture of them exists).
OPEN_INTEREST = ('{"retCode":0,"retMsg":"OK","result":{"symbol":"{symbol}","category":"linear","list":['
                 '{"openInterest":"59891.732","timestamp":"1786310700000"},'
                 '{"openInterest":"59880.100","timestamp":"1786310400000"}],"nextPageCursor":""},'
                 '"retExtInfo":{},"time":1786310817197}')
FUNDING = ('{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":['
           '{"symbol":"{symbol}","fundingRate":"0.0001","fundingRateTimestamp":"1786291200000"}]},'
           '"retExtInfo":{},"time":1786310817197}')


@pytest.fixture
def rest(instruments_reply: str) -> Iterator[LoopbackBybitRest]:
    server = LoopbackBybitRest(instruments_reply, throttle_first=1, reset_after_ms=5000, other_replies={
        "/v5/market/open-interest": OPEN_INTEREST, "/v5/market/funding/history": FUNDING})
    server.start()
    yield server
    server.stop()


def test_rate_limited_reply_waits_for_the_reset_and_retries(rest: LoopbackBybitRest) -> None:
    waits: list[float] = []
    reply = BybitRest(rest.url, sleep=waits.append).instruments("linear", "BTCUSDT")
    (item,) = json.loads(reply.text)["result"]["list"]
    assert item["symbol"] == "BTCUSDT" and item["priceFilter"]["tickSize"] == "0.10"
    assert len(rest.requests) == 2 and rest.requests[1].endswith("category=linear&limit=1000&symbol=BTCUSDT")
    assert len(waits) == 1 and 4.0 < waits[0] <= 5.0  # until X-Bapi-Limit-Reset-Timestamp, not a guess


def test_refusal_is_an_error_with_the_reason(rest: LoopbackBybitRest) -> None:
    with pytest.raises(RestError, match=r"GET http://127.0.0.1:\d+/nope\?: HTTP 404"):
        BybitRest(rest.url, sleep=lambda _: None).get("/nope", {})


def test_record_then_replay_gives_the_records_of_the_live_session(
        settings: Settings, bybit_capture: Path, rest: LoopbackBybitRest, tmp_path: Path,
        peer_in_thread: Callable[[LoopbackBybit], AbstractContextManager[LoopbackBybit]]) -> None:
    frames = [f.data for f in read_capture(bybit_capture)
              if f.kind == "recv" and f.venue == "bybit-linear" and '"topic"' in f.data]
    out = tmp_path / "session.jsonl.zst"
    prefix = f"rec{uuid.uuid4().hex[:8]}."
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": prefix, "LIQBOT_PARTITIONS": str(settings.kafka.partitions)}
    with peer_in_thread(LoopbackBybit(frames)) as ws:
        run = subprocess.run(
            [sys.executable, "-m", "liqbot.cli", "record", "--bootstrap", settings.kafka.bootstrap_servers,
             "--registry", settings.serde.registry_url, "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT,DOGEUSDT",
             "--depth", "200", "--kline", "--url", ws.url, "--rest-url", rest.url, "--seconds", "8",
             "--out", str(out)], env=env, capture_output=True, text=True, timeout=120, check=False)
        served = ws.cursor
    assert run.returncode == 0, run.stdout + run.stderr
    assert served == len(frames), "the session ended before the loopback peer served the whole capture"
    recorded = list(read_capture(out))
    assert f"recorded {len(recorded)} frames to {out}" in run.stdout
    assert [f.data for f in recorded if '"topic"' in f.data] == frames  # every frame, in order
    assert sum(f.kind == "http" for f in recorded) == 12  # instruments, open interest, funding per symbol

    live = _kafka_records(settings, prefix)
    sink = CountingSink()
    stats = replay_captures([out], Ingestor(sink), say=lambda _: None)
    assert stats.errors == 0 and stats.gaps == 0
    assert Counter(live) == Counter(sink.records)
    assert sum(isinstance(r, Instrument) for r in live) == 4
    funding = sorted((r.symbol, r.funding_rate, r.ts_event_ns) for r in live if isinstance(r, FundingRate))
    assert funding[0] == ("BTCUSDT", "0.0001", 1786291200000_000000)
    assert Counter(r.SCHEMA for r in live) == {
        "liqbot.Trade": 327, "liqbot.BookUpdate": 1598, "liqbot.TopOfBook": 1598, "liqbot.Ticker": 758,
        "liqbot.Instrument": 4, "liqbot.OpenInterest": 8, "liqbot.FundingRate": 4}


def _kafka_records(settings: Settings, prefix: str) -> list[AvroRecord]:
    clients = Clients.connect(replace(settings, kafka=replace(settings.kafka, topic_prefix=prefix)))
    names = [clients.topics.name(s) for s in clients.topics.specs]
    consumer = clients.consumer(names, f"g-{uuid.uuid4().hex[:8]}")
    records = [got.record for got in consumer.records(idle_timeout_s=5)]
    consumer.close()
    return records


def test_ingest_serves_its_metrics_while_it_streams(
        settings: Settings, bybit_capture: Path, rest: LoopbackBybitRest, tmp_path: Path,
        peer_in_thread: Callable[[LoopbackBybit], AbstractContextManager[LoopbackBybit]]) -> None:
    """`liqbot ingest --metrics-port` on the loopback Bybit replaying the real capture: what it received, what Kafka
    took, and the newest exchange time of each symbol, scraped while it streams."""
    frames = [f.data for f in read_capture(bybit_capture)
              if f.kind == "recv" and f.venue == "bybit-linear" and '"topic"' in f.data]
    sink = CountingSink()
    replayed = Ingestor(sink)
    parser = BybitPublicParser()
    for frame in frames:
        replayed.on_frame(parser, frame, 0, "test")
    newest: dict[tuple[str, str], int] = {}  # (kind, symbol): the last record's exchange time, from the records
    kinds = {Trade: "trade", BookUpdate: "book", Ticker: "ticker"}
    for record in sink.records:
        if isinstance(record, Trade | BookUpdate | Ticker):
            newest[(kinds[type(record)], record.symbol)] = record.ts_exchange_ns
    by_schema = {"liqbot.Trade": 327, "liqbot.BookUpdate": 1598, "liqbot.TopOfBook": 1598, "liqbot.Ticker": 758,
                 "liqbot.Instrument": 4, "liqbot.OpenInterest": 8, "liqbot.FundingRate": 4}  # as recorded above
    produced = {settings.kafka.topic_prefix + spec.name: float(by_schema[spec.schema]) for spec in TOPICS
                if spec.schema in by_schema}
    port = free_port()
    with peer_in_thread(LoopbackBybit(frames)) as ws, LiqbotProcess(
            settings, tmp_path, ["ingest", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT,DOGEUSDT", "--depth", "200",
                                 "--kline", "--url", ws.url, "--rest-url", rest.url, "--seconds", "300",
                                 "--metrics-port", str(port)]) as ingest:
        families = scrape_until(port, lambda f: by_label(f, "liqbot_records_produced_total", "topic") == produced)
        problems = drift(port, "Ingest")
        assert ingest.process.poll() is None, ingest.tail()
    assert problems == []
    assert value(families, "liqbot_build_info", process="ingest", version=__version__) == 1
    received = by_label(families, "liqbot_frames_received_total", "kind")
    assert {k: received.get(k, 0) for k in replayed.stats.frames} == replayed.stats.frames  # the capture's frames
    assert value(families, "liqbot_parse_errors_total", venue="bybit-linear") == 0
    assert value(families, "liqbot_book_gaps_total", venue="bybit-linear") == 0
    latencies = value(families, "liqbot_exchange_to_receive_seconds_count", venue="bybit-linear")
    assert latencies == value(families, "liqbot_receive_to_produce_seconds_count", venue="bybit-linear") > 0
    gauged = {(s.labels["kind"], s.labels["symbol"]): s.value
              for s in families["liqbot_market_last_event_timestamp_seconds"] if s.labels["venue"] == "bybit-linear"}
    assert {key: gauged.get(key) for key in newest} == {key: ts / 1e9 for key, ts in newest.items()}
