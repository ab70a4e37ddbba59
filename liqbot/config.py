"""One typed, frozen settings tree; environment variables are read only by `Settings.from_env`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from liqbot.errors import LiqbotError

__all__ = ["BrokerSettings", "KafkaSettings", "SerdeSettings", "Settings"]

SerdeKind = Literal["confluent", "single-object"]


@dataclass(frozen=True, kw_only=True)
class KafkaSettings:
    """How to reach Kafka and how topics are laid out."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""  # tests give every test its own prefix
    partitions: int = 6  # one count for every symbol-keyed topic, so they stay co-partitioned
    replication_factor: int = 1
    client_id: str = "liqbot"
    compression_type: str = "lz4"
    linger_ms: float = 1.0  # a short linger keeps p99 latency low at market-data rates


@dataclass(frozen=True, kw_only=True)
class SerdeSettings:
    """Which wire framing carries Avro bodies (see docs/serde.md)."""

    kind: SerdeKind = "confluent"
    registry_url: str = "http://127.0.0.1:9094/apis/ccompat/v7"


@dataclass(frozen=True, kw_only=True)
class BrokerSettings:
    """The local development broker started by `liqbot kafka up`."""

    home: Path = Path(".liqbot")
    cache_dir: Path = Path.home() / ".cache" / "liqbot"
    port: int = 9092  # controller port+1, registry port+2, registry management port+3
    heap_mb: int = 768


@dataclass(frozen=True, kw_only=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    serde: SerdeSettings = field(default_factory=SerdeSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Defaults overridden by LIQBOT_* variables (documented in README)."""
        kafka = KafkaSettings(
            bootstrap_servers=env.get("LIQBOT_BOOTSTRAP", KafkaSettings.bootstrap_servers),
            topic_prefix=env.get("LIQBOT_TOPIC_PREFIX", ""),
            partitions=int(env.get("LIQBOT_PARTITIONS", KafkaSettings.partitions)),
        )
        kind = env.get("LIQBOT_SERDE", SerdeSettings.kind)
        if kind not in ("confluent", "single-object"):
            raise LiqbotError(f"LIQBOT_SERDE={kind!r}: use 'confluent' or 'single-object'")
        registry_url = env.get("LIQBOT_REGISTRY_URL", SerdeSettings.registry_url)
        serde = SerdeSettings(kind=cast(SerdeKind, kind), registry_url=registry_url)
        broker = BrokerSettings(
            home=Path(env.get("LIQBOT_HOME", ".liqbot")),
            cache_dir=Path(env.get("LIQBOT_CACHE", str(BrokerSettings.cache_dir))),
        )
        return cls(kafka=kafka, serde=serde, broker=broker)
