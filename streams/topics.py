"""The one topic registry: names, schemas, partitions, keys, retention; idempotent creation."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from liqbot.config import KafkaSettings
from liqbot.errors import LiqbotError

__all__ = ["TOPICS", "TopicMismatchError", "TopicRegistry", "TopicSpec"]

log = logging.getLogger(__name__)

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    """A logical topic. `name` is unprefixed; `TopicRegistry.name()` gives the real one."""

    name: str
    table: str  # the ClickHouse table that keeps its history (streams/history/migrations)
    schema: str
    key: str
    retention_ms: int
    cleanup_policy: Literal["delete", "compact"] = "delete"
    doc: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(name="market.trades", table="trades", schema="liqbot.Trade", key="symbol",
              retention_ms=7 * _DAY_MS, doc="Public trades."),
    TopicSpec(name="market.liquidations", table="liquidations", schema="liqbot.Liquidation", key="symbol",
              retention_ms=30 * _DAY_MS, doc="Forced liquidations, side = liquidated position."),
    TopicSpec(name="market.book", table="book_updates", schema="liqbot.BookUpdate", key="symbol",
              retention_ms=2 * _DAY_MS, doc="Order-book snapshots, deltas and resync markers."),
    TopicSpec(name="market.top_of_book", table="top_of_book", schema="liqbot.TopOfBook", key="symbol",
              retention_ms=7 * _DAY_MS, doc="Best bid/ask, mid and microprice after each book update."),
    TopicSpec(name="market.tickers", table="tickers", schema="liqbot.Ticker", key="symbol",
              retention_ms=7 * _DAY_MS, doc="Merged ticker: funding, open interest, mark and index price."),
    TopicSpec(name="market.instruments", table="instruments", schema="liqbot.Instrument", key="symbol",
              retention_ms=-1, cleanup_policy="compact", doc="Tick size, lot size, min order; latest per symbol."),
    TopicSpec(name="market.open_interest", table="open_interest", schema="liqbot.OpenInterest", key="symbol",
              retention_ms=90 * _DAY_MS, doc="Open interest history (REST)."),
    TopicSpec(name="market.funding", table="funding_rates", schema="liqbot.FundingRate", key="symbol",
              retention_ms=-1, doc="Funding rates applied at funding times (REST); small and kept for good."),
    TopicSpec(name="features", table="feature_vectors", schema="liqbot.FeatureVector", key="symbol",
              retention_ms=7 * _DAY_MS, doc="Feature vectors in event time."),
    TopicSpec(name="predictions", table="predictions", schema="liqbot.Prediction", key="symbol",
              retention_ms=30 * _DAY_MS, doc="Per-arm expected net return and fill probability."),
    TopicSpec(name="orders.intents", table="order_intents", schema="liqbot.OrderIntent", key="symbol",
              retention_ms=90 * _DAY_MS, doc="Orders that passed every risk rule."),
    TopicSpec(name="orders.cancels", table="order_cancels", schema="liqbot.OrderCancel", key="symbol",
              retention_ms=90 * _DAY_MS,
              doc="Cancel requests from the risk rules (dead-man, kill switch, halt, breaker)."),
    TopicSpec(name="orders.events", table="order_events", schema="liqbot.OrderEvent", key="symbol",
              retention_ms=90 * _DAY_MS, doc="Accepted, rejected, filled, cancelled, expired."),
    TopicSpec(name="positions", table="positions", schema="liqbot.Position", key="symbol",
              retention_ms=90 * _DAY_MS, doc="Position and PnL after each change."),
    TopicSpec(name="control", table="control_commands", schema="liqbot.ControlCommand", key="scope",
              retention_ms=365 * _DAY_MS,
              doc="Kill switch and dead-man switch commands to every worker: the safety controls' audit log."),
    TopicSpec(name="deadletter", table="dead_letters", schema="liqbot.DeadLetter", key="source",
              retention_ms=30 * _DAY_MS, doc="Raw input that failed parse, validation or decode, with the reason."),
)


class TopicMismatchError(LiqbotError):
    """An existing topic differs from the registry in a way creation cannot fix."""


class TopicRegistry:
    """Topic names under one prefix, and their creation on a cluster."""

    def __init__(self, settings: KafkaSettings, specs: tuple[TopicSpec, ...] = TOPICS) -> None:
        self.settings = settings
        self._specs = {s.name: s for s in specs}

    @property
    def specs(self) -> tuple[TopicSpec, ...]:
        return tuple(self._specs.values())

    def spec(self, name: str) -> TopicSpec:
        if name not in self._specs:
            raise KeyError(f"unknown topic {name!r}; known: {', '.join(self._specs)}")
        return self._specs[name]

    def name(self, spec: TopicSpec | str) -> str:
        """The topic's name on the cluster."""
        logical = spec if isinstance(spec, str) else spec.name
        return self.settings.topic_prefix + self.spec(logical).name

    def for_schema(self, schema: str) -> TopicSpec:
        matches = [s for s in self._specs.values() if s.schema == schema]
        if len(matches) != 1:
            raise KeyError(f"schema {schema!r} is carried by {len(matches)} topics, expected one")
        return matches[0]

    def new_topic(self, spec: TopicSpec) -> NewTopic:
        config = {"cleanup.policy": spec.cleanup_policy, "retention.ms": str(spec.retention_ms)}
        return NewTopic(
            self.name(spec),
            num_partitions=self.settings.partitions,
            replication_factor=self.settings.replication_factor,
            config=config,
        )

    def ensure(self, admin: AdminClient, timeout_s: float = 30.0) -> dict[str, str]:
        """Create missing topics; existing ones are checked, never altered. Returns name -> created|exists."""
        futures = admin.create_topics(
            [self.new_topic(s) for s in self.specs], operation_timeout=timeout_s, request_timeout=timeout_s
        )
        outcome: dict[str, str] = {}
        for name, future in futures.items():
            try:
                future.result()
                outcome[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise LiqbotError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
                outcome[name] = "exists"
        self._check_partitions(admin, [n for n, o in outcome.items() if o == "exists"], timeout_s)
        log.info("topics ensured: %s", outcome)
        return outcome

    def _check_partitions(self, admin: AdminClient, names: list[str], timeout_s: float) -> None:
        if not names:
            return
        for name in names:
            found = self._partition_count(admin, name, timeout_s)
            if found != self.settings.partitions:
                raise TopicMismatchError(
                    f"topic {name} has {found} partitions, the registry expects {self.settings.partitions}; "
                    "symbol-keyed topics must be co-partitioned: recreate it or set LIQBOT_PARTITIONS"
                )

    @staticmethod
    def _partition_count(admin: AdminClient, name: str, timeout_s: float) -> int:
        """Partitions of an existing topic; a topic created a moment ago may take a while to show up."""
        deadline = time.monotonic() + timeout_s
        while True:
            topic = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
            if topic is not None and topic.error is None and topic.partitions:
                return len(topic.partitions)
            if time.monotonic() > deadline:
                raise LiqbotError(f"topic {name} exists but its metadata did not arrive within {timeout_s:.0f}s")
            time.sleep(0.1)
