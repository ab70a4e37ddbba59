"""The local platform behind `liqbot kafka up|down|status`: one Kafka broker and, beside it, the schema registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from deploy.kafka import broker
from deploy.registry import registry
from liqbot.config import Settings

__all__ = ["Platform", "connect_settings", "down", "ensure", "status", "up"]


@dataclass(frozen=True)
class Platform:
    broker: broker.BrokerState
    registry: registry.RegistryState | None


def up(settings: Settings, *, port: int, say: Callable[[str], None] = print) -> Platform:
    """Start what is not running yet; the registry only when the serde needs it."""
    home, cache = settings.broker.home, settings.broker.cache_dir
    state = broker.status(home)
    if state is None:
        libs = broker.fetch_libs(cache, say)
        state = broker.start(home, libs, port=port, controller_port=port + 1, heap_mb=settings.broker.heap_mb)
    reg = None
    if settings.serde.kind == "confluent":
        reg = registry.status(home / "registry")
        if reg is None:
            dist = registry.fetch_dist(cache, say)
            (home / "registry").mkdir(parents=True, exist_ok=True)
            reg = registry.start(home / "registry", dist, port=port + 2, management_port=port + 3,
                                 bootstrap=state.bootstrap)
    return Platform(state, reg)


def down(settings: Settings) -> tuple[bool, bool]:
    """Stop the registry, then the broker; each flag says whether it was running."""
    reg = registry.stop(settings.broker.home / "registry")
    return broker.stop(settings.broker.home), reg


def status(settings: Settings) -> Platform | None:
    state = broker.status(settings.broker.home)
    if state is None:
        return None
    return Platform(state, registry.status(settings.broker.home / "registry"))


def connect_settings(settings: Settings, platform: Platform) -> Settings:
    """`settings` pointed at the running platform."""
    kafka = replace(settings.kafka, bootstrap_servers=platform.broker.bootstrap)
    serde = replace(settings.serde, registry_url=platform.registry.url) if platform.registry else settings.serde
    return replace(settings, kafka=kafka, serde=serde)


def ensure(settings: Settings, *, bootstrap: str | None = None, registry_url: str | None = None,
           say: Callable[[str], None] = print) -> Settings:
    """Settings for an explicit Kafka (and registry), else for the local platform, started when down."""
    if bootstrap:
        kafka = replace(settings.kafka, bootstrap_servers=bootstrap)
        serde = replace(settings.serde, registry_url=registry_url or settings.serde.registry_url)
        return replace(settings, kafka=kafka, serde=serde)
    platform = status(settings)
    if platform is None or (settings.serde.kind == "confluent" and platform.registry is None):
        platform = up(settings, port=settings.broker.port, say=say)
        registry_note = f", registry {platform.registry.url}" if platform.registry else ""
        say(f"local platform up: kafka {platform.broker.bootstrap}{registry_note} (stop it: `liqbot kafka down`)")
    return connect_settings(settings, platform)
