"""The Binance USD-M connector against a loopback peer serving the real capture, into the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from liqbot.config import Settings
from liqbot.data import BINANCE_CAPTURE
from schemas.records import BookUpdate
from streams.binance.client import BinanceClient, BinanceStreamConfig
from streams.binance.loopback import LoopbackBinance
from streams.capture import read_capture
from streams.clients import Clients
from streams.ingest import Ingestor, KafkaSink
from streams.websocket import ReconnectPolicy


def test_streams_snapshot_bridge_and_every_record_reach_kafka(clients: Clients) -> None:
    lines = [f.data for f in read_capture(BINANCE_CAPTURE, default_venue="binance-usdm")]
    depth_reply = next(line for line in lines if line.startswith('{"lastUpdateId"'))
    frames = [line for line in lines if line.startswith('{"stream"')]
    ingestor = Ingestor(KafkaSink(clients.producer, clients.topics), clients.dead_letters)

    async def scenario() -> tuple[BinanceClient, LoopbackBinance]:
        server = LoopbackBinance(frames, depth_reply)
        await server.start()
        config = BinanceStreamConfig(symbols=("BTCUSDT",), ws_base=server.ws_base, rest_base=server.rest_base,
                                     depth_speed="0ms", snapshot_delay_s=0.2, policy=ReconnectPolicy())
        client = BinanceClient(config, ingestor.on_frame)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        while server.cursor < len(frames) or client.snapshots < 1 or \
                time.time_ns() - client.socket.last_message_ns < 700_000_000:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.stop()
        return client, server

    client, server = asyncio.run(scenario())
    assert clients.producer.flush(30) == 0
    assert server.depth_requests == ["/fapi/v1/depth?symbol=BTCUSDT&limit=1000"]
    assert client.reconnects == 0 and ingestor.stats.gaps == 0 and ingestor.stats.errors == 0
    names = [clients.topics.name(s) for s in clients.topics.specs]
    consumer = clients.consumer(names, f"g-{uuid.uuid4().hex[:8]}")
    records = [got.record for got in consumer.records(idle_timeout_s=5)]
    consumer.close()
    # the same records as the dry run of the capture: the held deltas bridge to the snapshot
    assert Counter(r.SCHEMA for r in records) == {"liqbot.Trade": 21313, "liqbot.TopOfBook": 66089 + 6548,
                                                   "liqbot.BookUpdate": 6548}
    kinds = Counter(r.update_type for r in records if isinstance(r, BookUpdate))
    assert kinds == {"SNAPSHOT": 1, "DELTA": 6547}


def test_record_binance_then_replay_gives_the_same_records(
        settings: Settings, tmp_path: Path,
        peer_in_thread: Callable[[LoopbackBinance], AbstractContextManager[LoopbackBinance]]) -> None:
    lines = [f.data for f in read_capture(BINANCE_CAPTURE, default_venue="binance-usdm")]
    depth_reply = next(line for line in lines if line.startswith('{"lastUpdateId"'))
    frames = [line for line in lines if line.startswith('{"stream"')][:20_000]
    out = tmp_path / "binance.jsonl.zst"
    prefix = f"bn{uuid.uuid4().hex[:8]}."
    env = {**os.environ, "LIQBOT_TOPIC_PREFIX": prefix, "LIQBOT_PARTITIONS": str(settings.kafka.partitions)}
    with peer_in_thread(LoopbackBinance(frames, depth_reply)) as peer:
        run = subprocess.run(
            [sys.executable, "-m", "liqbot.cli", "record", "--venue", "binance", "--symbols", "BTCUSDT",
             "--depth-speed", "0ms",  # what the capture subscribed
             "--bootstrap", settings.kafka.bootstrap_servers, "--registry", settings.serde.registry_url,
             "--url", peer.ws_base, "--rest-url", peer.rest_base, "--seconds", "8", "--out", str(out)],
            env=env, capture_output=True, text=True, timeout=120, check=False)
        served = peer.cursor
    assert run.returncode == 0, run.stdout + run.stderr
    assert served == len(frames)
    live = Counter(json.loads(run.stdout.splitlines()[-1]).items())
    replay = subprocess.run([sys.executable, "-m", "liqbot.cli", "replay-capture", "--dry-run", "--venue", "binance",
                             str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert replay.returncode == 0, replay.stderr
    summary = json.loads(replay.stdout.splitlines()[-1])
    assert Counter(summary.items()) == live, run.stderr
    assert summary["errors"] == 0 and summary["gaps"] == 0
    assert summary["frames"] == len(frames) + 1  # every frame, and the REST snapshot
