"""Session-wide real infrastructure: one Apache Kafka broker and one Apicurio registry on free loopback ports."""

from __future__ import annotations

import asyncio
import signal
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


# Every test leaves SIGINT and SIGTERM as it found them. A disposition left behind reaches every later test's child
# processes: an ignored or blocked signal is inherited through exec (a Python child started with SIGINT ignored never
# gets KeyboardInterrupt, and `liqbot lag exporter`'s Ctrl-C test hung so), and a Python handler changes what Ctrl-C
# does to pytest itself.
WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Disposition = tuple[object, bool, bool]  # Python's handler, ignored in the kernel, blocked in the main thread
_DISPOSITIONS = pytest.StashKey[dict[signal.Signals, Disposition]]()


def _kernel_ignored() -> set[int]:
    """Signals the kernel ignores for this process (SigIgn), also when a library set SIG_IGN outside Python."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux: Python's own view only
        return set()
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigIgn:"))
    return {sig for sig in WATCHED_SIGNALS if mask & (1 << (sig - 1))}


def signal_dispositions() -> dict[signal.Signals, Disposition]:
    """SIGINT's and SIGTERM's handler, and whether each is ignored or blocked: what a child started now inherits."""
    ignored, blocked = _kernel_ignored(), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return {sig: (signal.getsignal(sig), sig in ignored, sig in blocked) for sig in WATCHED_SIGNALS}


def _handler_name(handler: object) -> str:
    if isinstance(handler, signal.Handlers):
        return handler.name  # SIG_IGN, SIG_DFL
    if handler is signal.default_int_handler:
        return "signal.default_int_handler (KeyboardInterrupt)"
    if handler is None:
        return "a handler installed outside Python"
    name = getattr(handler, "__qualname__", None) or repr(handler)
    return f"{getattr(handler, '__module__', None) or '?'}.{name}"


def _describe(disposition: Disposition) -> str:
    handler, ignored, blocked = disposition
    text = f"handler {_handler_name(handler)}"
    if ignored and handler is not signal.SIG_IGN:
        text += ", ignored in the kernel (SIG_IGN set outside Python)"
    return text + (", blocked in the main thread" if blocked else "")


def restore_signal_dispositions(before: dict[signal.Signals, Disposition]) -> list[str]:
    """Put back what changed since `before`; one line per signal left changed, naming what was left behind."""
    changed = []
    for sig, now in signal_dispositions().items():
        if now == before[sig]:
            continue
        changed.append(f"{sig.name}: left {_describe(now)}; it was {_describe(before[sig])}")
        handler, _, blocked = before[sig]
        if handler is not None:  # re-installing it also undoes a SIG_IGN set outside Python
            signal.signal(sig, handler)  # type: ignore[arg-type]  # getsignal's object: a handler signal() takes
        signal.pthread_sigmask(signal.SIG_BLOCK if blocked else signal.SIG_UNBLOCK, [sig])
    return changed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    item.stash[_DISPOSITIONS] = signal_dispositions()  # before any fixture this test sets up, of any scope
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A test (with the fixtures it set up and tore down) that changed SIGINT or SIGTERM fails at its teardown,
    naming the signal and the handler it left; the disposition is restored, so that later tests run as they would."""
    try:
        result = yield
    finally:
        before = item.stash.get(_DISPOSITIONS, None)
        changed = restore_signal_dispositions(before) if before is not None else []
    if changed:
        pytest.fail(f"{item.nodeid} left signal dispositions changed (restored now; a child process started later "
                    f"inherits an ignored or blocked signal): " + "; ".join(changed) +
                    ". Restore them when the test, its fixture or the code it runs ends "
                    "(signal.signal(sig, previous), loop.remove_signal_handler(sig)).", pytrace=False)
    return result
