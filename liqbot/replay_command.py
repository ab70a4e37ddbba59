"""`liqbot replay`: the market topics of a time range re-read into a run's namespace and through the agents."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace

from liqbot import stream_commands
from liqbot.backtest_command import add_realism_arguments, paper_config
from liqbot.config import Settings
from liqbot.errors import LiqbotError
from liqbot.pipeline_command import through_agents
from liqbot.times import parse_time_ms

__all__ = ["add_command", "replay"]


def replay(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topic_replay import copy_ranges, plan

    paper_config(args)  # its worker's paper venue: a bad flag stops the run before anything is copied
    source = stream_commands.connected(args, settings).settings
    start_ms, end_ms = _range(args)
    ranges = plan(source.kafka, start_ms, end_ms)
    if not any(r.records for r in ranges if not r.state):
        raise LiqbotError(f"no market records between {args.start} and {args.end} in the topics "
                          f"{source.kafka.topic_prefix}market.*; widen the range, or check LIQBOT_TOPIC_PREFIX")
    run = f"{source.kafka.topic_prefix}{args.run}."
    target = stream_commands.connected(args, replace(source, kafka=replace(source.kafka, topic_prefix=run))).settings
    _refuse_a_used_run(target, args.run)
    planned = Counter({r.topic: 0 for r in ranges})
    for r in ranges:
        planned[r.topic] += r.records

    def feed(settings: Settings) -> int:
        copied = copy_ranges(source.kafka, settings.kafka, ranges,
                             lambda done: _say(f"replay: copied {sum(done.values()):,} of {planned.total():,}"))
        if copied != +planned:
            raise LiqbotError(f"replay copied {dict(copied)} of the planned {dict(planned)}")
        return copied.total()

    # copied in full before the worker starts: a topic the copy has not reached yet would look idle to the
    # event-time merge, which would then let later records of the others pass ahead of it
    total, summary = through_agents(args, target, feed, f"the market topics of {source.kafka.topic_prefix or '(live)'}"
                                    f" from {args.start} to {args.end} replayed through the agents worker",
                                    feed_first=True)
    print(json.dumps({"run": args.run, "from_ms": start_ms, "to_ms": end_ms, "market_records_replayed": total,
                      "per_topic": dict(sorted(planned.items())), **{k: v for k, v in summary.items() if k != "run"}}))
    return 0


def _range(args: argparse.Namespace) -> tuple[int, int]:
    try:
        return parse_time_ms(args.start), parse_time_ms(args.end)
    except ValueError as exc:
        raise LiqbotError(str(exc)) from None


def _refuse_a_used_run(target: Settings, run: str) -> None:
    """A run's namespace is written once: replaying into it again would mix two runs' outputs."""
    from confluent_kafka import Consumer

    from streams.topic_replay import occupied

    consumer = Consumer({"bootstrap.servers": target.kafka.bootstrap_servers, "group.id": "liqbot-replay-check"})
    try:
        held = occupied(consumer, target.kafka)
    finally:
        consumer.close()
    if held:
        raise LiqbotError(f"run {run!r} exists already ({held:,} records in {target.kafka.topic_prefix}*); "
                          f"choose another --run")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: argparse.ArgumentParser,
                where: argparse.ArgumentParser) -> None:
    p = sub.add_parser("replay", parents=[remote, where],
                       help="re-read the market topics of a time range through the agents, into a run's own topics")
    p.add_argument("--from", dest="start", required=True, metavar="TIME",
                   help="Kafka record time to start at: ISO 8601 (UTC unless given) or epoch ms")
    p.add_argument("--to", dest="end", required=True, metavar="TIME", help="record time to stop before")
    p.add_argument("--run", required=True, help="the run's name: its topics are <prefix><run>.*, its rows in "
                                                "ClickHouse have _topic LIKE '<prefix><run>.%%'")
    p.add_argument("--models", help="the model registry the worker serves from (default: training/models)")
    add_realism_arguments(p)  # the run's paper venue, as a backtest of its history would take them
    p.set_defaults(func=replay)
