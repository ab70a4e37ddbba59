"""The lag commands of `liqbot`: `lag` (sample, then print a table or JSON) and `lag exporter` (Prometheus)."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from liqbot import stream_commands
from liqbot.config import Settings
from liqbot.errors import LiqbotError

if TYPE_CHECKING:
    from streams.lag.monitor import LagMonitor
    from streams.lag.tracker import GroupLag, LagSnapshot

__all__ = ["add_commands", "lag", "snapshot_json", "snapshot_table"]


def _settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """--bootstrap/--registry when given, else the running local platform; never starts a broker to measure it."""
    from deploy import local

    if args.bootstrap:
        return local.ensure(settings, bootstrap=args.bootstrap, registry_url=args.registry)
    platform = local.status(settings)
    if platform is None:
        raise LiqbotError(f"no Kafka to read: the local broker of {settings.broker.home} is not running "
                          "(start it: `liqbot kafka up`), or point at one with --bootstrap HOST:PORT")
    return local.connect_settings(settings, platform)


def _monitor(args: argparse.Namespace, settings: Settings) -> LagMonitor:
    from streams.lag.cluster import ClusterReader
    from streams.lag.evaluator import LagConfig
    from streams.lag.event_time import EventTimeReader, event_time_topics
    from streams.lag.monitor import LagMonitor
    from streams.lag.tracker import LagTracker
    from streams.serde import make_serde
    from streams.topics import TopicRegistry

    bootstrap = settings.kafka.bootstrap_servers
    events = EventTimeReader(bootstrap, make_serde(settings.serde), event_time_topics(TopicRegistry(settings.kafka)))
    tracker = LagTracker(LagConfig(intervals=args.intervals), groups=args.group)
    return LagMonitor(ClusterReader(bootstrap, timeout_s=args.timeout), tracker, events)


def _check_groups(monitor: LagMonitor, snapshot: LagSnapshot, asked: list[str] | None) -> None:
    """Asked-for groups must exist; one that exists but never committed is said on stderr."""
    missing = sorted(set(asked or ()) - {g.group for g in snapshot.groups})
    if not missing:
        return
    listed = monitor.reader.groups()
    unknown = [g for g in missing if g not in listed]
    if unknown:
        known = ", ".join(sorted(listed | monitor.tracker.groups)) or "none"
        raise LiqbotError(f"unknown consumer group {', '.join(unknown)} at {monitor.reader.bootstrap} (known: "
                          f"{known}); check the name, or run `liqbot lag` without --group to see every group")
    for group in missing:
        print(f"lag: group {group} exists but has committed no offset yet", file=sys.stderr)


def lag(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "exporter":
        return _exporter(args, _settings(args, settings))
    if args.samples < 1 or args.every < 0:
        raise LiqbotError("--samples takes 1 or more rounds and --every 0 or more seconds")
    monitor = _monitor(args, _settings(args, settings))
    try:
        snapshot = monitor.round()
        _check_groups(monitor, snapshot, args.group)
        for done in range(1, args.samples + 1):
            if done > 1:
                threading.Event().wait(args.every)
                snapshot = monitor.round()
            print(f"lag: round {done}/{args.samples}: {len(snapshot.groups)} groups, "
                  f"total lag {sum(g.total_lag for g in snapshot.groups):,}", file=sys.stderr, flush=True)
    finally:
        monitor.close()
    print(json.dumps(snapshot_json(snapshot), indent=2) if args.json else snapshot_table(snapshot))
    return 0


def _exporter(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import REGISTRY

    from streams.lag.exporter import LagCollector

    if args.metrics_port is None:
        raise LiqbotError("`liqbot lag exporter` serves metrics: give --metrics-port PORT")
    monitor = _monitor(args, settings)
    collector = LagCollector(args.cluster_name)
    REGISTRY.register(collector)
    stream_commands.serve_metrics(args, "lag-exporter")
    print(f"lag exporter: metrics on http://{args.metrics_addr}:{args.metrics_port}/metrics, a round every "
          f"{args.every:g} s (Ctrl-C stops)", file=sys.stderr, flush=True)
    stop = threading.Event()
    interrupted: list[int] = []

    def on_signal(sig: int, _: object) -> None:
        interrupted.append(sig)
        stop.set()

    # handled here, not as KeyboardInterrupt: a child started with SIGINT ignored never gets Python's handler
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def failed(exc: Exception) -> None:
        collector.failed()
        print(f"lag exporter: round failed, retrying: {exc}", file=sys.stderr, flush=True)

    try:
        monitor.run(args.every, stop, lambda s: collector.update(s, monitor.stats.last_round_s), failed)
    finally:
        monitor.close()
    return 130 if signal.SIGINT in interrupted else 0  # as Ctrl-C ends every other command


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 3)


def _group_json(group: GroupLag) -> dict[str, Any]:
    return {
        "group": group.group, "status": group.status.name, "complete": group.complete,
        "total_lag": group.total_lag, "max_lag": group.max_lag, "max_lag_s": _number(group.max_lag_s),
        "partitions": [
            {"topic": p.topic, "partition": p.partition, "committed": p.committed,
             "commit_timestamp_ms": p.commit_timestamp_ms, "high_watermark": p.high_watermark,
             "earliest": p.earliest, "lag": p.lag, "lag_s": _number(p.lag_s),
             "event_lag_s": _number(p.event_lag_s), "status": p.status.name}
            for p in group.partitions
        ],
    }


def snapshot_json(snapshot: LagSnapshot) -> dict[str, Any]:
    """Unknown times are null; `event_lag_s` is null too for topics whose records carry no event time."""
    return {"time_ms": snapshot.time_ms, "groups": [_group_json(g) for g in snapshot.groups]}


def _seconds(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def snapshot_table(snapshot: LagSnapshot) -> str:
    """One aligned row per group and partition, then one per group."""
    header = ("group", "topic", "partition", "committed", "high watermark", "lag", "lag_s", "event_lag_s", "status")
    rows = [header] + [
        (p.group, p.topic, str(p.partition), str(p.committed), str(p.high_watermark), str(p.lag),
         _seconds(p.lag_s), _seconds(p.event_lag_s), p.status.name)
        for g in snapshot.groups for p in g.partitions
    ]
    groups = [("group", "status", "total lag", "max lag", "max lag_s", "complete")] + [
        (g.group, g.status.name, str(g.total_lag), str(g.max_lag), _seconds(g.max_lag_s), f"{g.complete:.2f}")
        for g in snapshot.groups
    ]
    if not snapshot.groups:
        return "no consumer group has committed offsets"
    return _aligned(rows) + "\n\n" + _aligned(groups)


def _aligned(rows: Sequence[Sequence[str]]) -> str:
    """Text columns left, number columns right (a column is a number column when every value below the header is)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    numeric = [all(_is_number(r[i]) for r in rows[1:]) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(r, widths, numeric, strict=True)).rstrip()
        for r in rows
    )


def _is_number(text: str) -> bool:
    return text == "-" or text.replace(".", "", 1).isdigit()


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: argparse.ArgumentParser) -> None:
    from streams.lag.evaluator import LagConfig

    p = sub.add_parser("lag", parents=[remote, stream_commands.metrics_options()],
                       help="consumer lag per group and partition: offsets, seconds, event time, Burrow's status "
                            "(docs/lag.md); `lag exporter` serves it to Prometheus")
    p.add_argument("action", nargs="?", choices=["exporter"],
                   help="exporter: sample until Ctrl-C and serve metrics (docs/metrics.md)")
    p.add_argument("--group", action="append", metavar="G", help="only this group (repeat for more; default: all)")
    p.add_argument("--every", type=float, default=1.0, metavar="S", help="seconds between rounds (%(default)s)")
    p.add_argument("--samples", type=int, default=3, metavar="N",
                   help="rounds before printing (%(default)s); time lag needs two")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--cluster-name", default="liqbot", help="the cluster_name label (%(default)s)")
    p.add_argument("--intervals", type=int, default=LagConfig().intervals,
                   help="commits per Burrow window (%(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="how long Kafka may take to answer (%(default)s)")
    p.set_defaults(func=lag)
