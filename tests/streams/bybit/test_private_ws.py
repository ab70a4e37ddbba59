"""The private stream's frame log against the loopback Bybit: the auth frame is logged by `websockets.client` with
the key scrubbed, and no logger is modified for it (no process-wide filter while the stream runs)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from schemas.records import OrderEvent
from streams.bybit.private_loopback import LoopbackBybitPrivate
from streams.bybit.private_ws import BybitPrivateStream, PrivateStreamConfig
from streams.bybit.signing import Credentials

CREDS = Credentials("XXXXXXXXXX7a4QzZ9y", "t0pS3cr3t-only-for-this-test-9f8e7d6c")


def test_the_frame_log_is_scrubbed_without_touching_any_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    frame_logger = logging.getLogger("websockets.client")

    async def scenario() -> int:
        peer = LoopbackBybitPrivate(CREDS, [])
        await peer.start()
        events: list[OrderEvent] = []
        stream = BybitPrivateStream(CREDS, PrivateStreamConfig(url=peer.ws_url), events.append,
                                    lambda: time.time_ns() // 1_000_000)
        stop = asyncio.Event()
        running = asyncio.create_task(stream.run(stop))
        try:
            await asyncio.wait_for(stream.ready.wait(), 10)
            filters = len(frame_logger.filters) + len(logging.getLogger().filters)
        finally:
            stop.set()
            await running
            await peer.stop()
        return filters

    assert asyncio.run(scenario()) == 0  # filters on websockets.client and the root logger while it runs
    sent = [r for r in caplog.records if r.name == "websockets.client" and r.getMessage().startswith("> TEXT")]
    assert sent[0].getMessage().startswith('> TEXT \'{"op": "auth", "args": ["<redacted>", ')
    assert Path(sent[0].pathname).parent.name == "websockets"  # the record names websockets' call, not the adapter
    assert CREDS.api_key not in caplog.text and CREDS.api_secret not in caplog.text
