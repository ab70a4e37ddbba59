"""Session-wide real infrastructure: one Apache Kafka broker and one Apicurio registry on free loopback ports."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from deploy.kafka import broker
from deploy.registry import registry
from liqbot.config import BrokerSettings, KafkaSettings, SerdeSettings, Settings
from liqbot.data import BYBIT_CAPTURE, LIQUIDATION_FRAMES
from streams.clients import Clients

CACHE = BrokerSettings().cache_dir


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[broker.BrokerState]:
    home = tmp_path_factory.mktemp("kafka")
    libs = broker.fetch_libs(CACHE)
    state = broker.start(home, libs, port=broker.free_port(), controller_port=broker.free_port(), heap_mb=512)
    yield state
    assert broker.stop(home), "the session broker was not running at teardown"


@pytest.fixture(scope="session")
def schema_registry(kafka_broker: broker.BrokerState,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry.RegistryState]:
    home = tmp_path_factory.mktemp("registry")
    dist = registry.fetch_dist(CACHE)
    state = registry.start(home, dist, port=broker.free_port(), management_port=broker.free_port(),
                           bootstrap=kafka_broker.bootstrap)
    yield state
    assert registry.stop(home), "the session registry was not running at teardown"


@pytest.fixture
def settings(kafka_broker: broker.BrokerState, schema_registry: registry.RegistryState) -> Settings:
    """Settings on the session platform, with a topic prefix of this test's own."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_broker.bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                            partitions=3),
        serde=SerdeSettings(kind="confluent", registry_url=schema_registry.url),
    )


@pytest.fixture
def clients(settings: Settings) -> Clients:
    """Producer, serde and dead letters on this test's freshly created topics."""
    made = Clients.connect(settings)
    made.topics.ensure(made.admin())
    return made


@pytest.fixture
def single_object_settings(settings: Settings) -> Settings:
    return replace(settings, serde=SerdeSettings(kind="single-object"))


@pytest.fixture(scope="session")
def bybit_capture() -> Path:
    assert BYBIT_CAPTURE.exists(), f"real capture missing: {BYBIT_CAPTURE} (../shared/data must sit beside the repo)"
    return BYBIT_CAPTURE


@pytest.fixture(scope="session")
def liquidation_frames() -> Path:
    assert LIQUIDATION_FRAMES.exists(), f"real frames missing: {LIQUIDATION_FRAMES}"
    return LIQUIDATION_FRAMES

class _Peer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


P = TypeVar("P", bound=_Peer)


@contextmanager
def _in_thread(peer: P) -> Iterator[P]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(peer.start(), loop).result(10)
    try:
        yield peer
    finally:
        asyncio.run_coroutine_threadsafe(peer.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def peer_in_thread() -> Callable[[P], AbstractContextManager[P]]:
    """`with peer_in_thread(LoopbackBybit(frames)) as peer:` serves on 127.0.0.1 from a background loop."""
    return _in_thread
