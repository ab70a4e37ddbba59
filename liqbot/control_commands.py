"""`liqbot control`: the operator's kill switch and dead-man switch, each use an audit record on the control topic."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from liqbot import stream_commands
from liqbot.config import Settings
from schemas.records import ControlAction

if TYPE_CHECKING:
    from streams.clients import Clients

__all__ = ["add_commands", "control"]

_ACTIONS: dict[str, ControlAction] = {"kill": "KILL", "resume": "RESUME", "arm": "ARM_DEAD_MAN",
                                      "heartbeat": "HEARTBEAT", "disarm": "DISARM_DEAD_MAN"}


def control(args: argparse.Namespace, settings: Settings) -> int:
    from streams.control import default_operator

    clients = stream_commands.connected(args, settings)
    if args.action == "status":
        return _status(clients, args.json)
    operator = args.operator or default_operator()
    reason = args.reason if args.reason is not None else ("heartbeat" if args.action == "heartbeat" else "")
    if args.action == "heartbeat" and args.every:
        return _heartbeats(clients, operator, reason, args.every)
    _send(clients, _ACTIONS[args.action], reason, operator, args.timeout)
    return 0


def _send(clients: Clients, action: ControlAction, reason: str, operator: str, timeout_s: float | None) -> None:
    from streams.control import new_command, send_command

    command = new_command(action, reason, operator, timeout_s=timeout_s)
    send_command(clients, command)
    if action != "HEARTBEAT":
        print(f"{action} sent by {operator} ({reason}); every agents worker obeys within a second "
              f"(command {command.command_id})", file=sys.stderr)


def _heartbeats(clients: Clients, operator: str, reason: str, every_s: float) -> int:
    print(f"heartbeats every {every_s:g} s as {operator}; Ctrl-C stops them (an armed dead-man switch then fires)",
          file=sys.stderr)
    try:
        while True:
            _send(clients, "HEARTBEAT", reason, operator, None)
            time.sleep(every_s)
    except KeyboardInterrupt:
        return 0


def _status(clients: Clients, as_json: bool) -> int:
    from decision.controls import SafetyControls
    from streams.control import ControlReader

    reader = ControlReader(clients)
    commands = reader.catch_up()
    state = SafetyControls()
    for command, read_ns in commands:
        state.apply(command, read_ns)
    last = [c for c, _ in commands if c.action != "HEARTBEAT"][-10:]
    heartbeats = [c for c, _ in commands if c.action == "HEARTBEAT"]
    timeout = None if state.dead_man_timeout_ns is None else state.dead_man_timeout_ns / 1e9
    report = {"kill_switch": state.kill_reason, "dead_man_timeout_s": timeout,
              "last_heartbeat": _when(heartbeats[-1].ts_issued_ns) if heartbeats else None,
              "commands": [{"when": _when(c.ts_issued_ns), "action": c.action, "operator": c.operator,
                            "reason": c.reason} for c in last]}
    if as_json:
        print(json.dumps(report))
        return 0
    print(f"kill switch: {state.kill_reason or 'clear'}")
    armed = f"armed, timeout {timeout:g} s" if timeout else "not armed"
    print(f"dead-man switch: {armed}; last heartbeat {report['last_heartbeat'] or 'never'}")
    for c in last:
        print(f"  {_when(c.ts_issued_ns)}  {c.action:<16} {c.operator:<28} {c.reason}")
    return 0


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], remote: argparse.ArgumentParser) -> None:
    ctl = sub.add_parser("control", parents=[remote],
                         help="kill switch and dead-man switch for every agents worker (audited on the control topic)")
    ctl.add_argument("action", choices=[*_ACTIONS, "status"],
                     help="kill: cancel everything, place nothing; resume: clear it; arm: the dead-man switch fires "
                          "(kills) when no heartbeat came for --timeout; heartbeat; disarm; status: what is in force")
    ctl.add_argument("--reason", help="why (required for kill, resume, arm and disarm: it is the audit record's)")
    ctl.add_argument("--operator", help="who (default: LIQBOT_OPERATOR, else user@host)")
    ctl.add_argument("--timeout", type=float, metavar="SECONDS", help="arm: the dead-man switch's timeout")
    ctl.add_argument("--every", type=float, metavar="SECONDS", help="heartbeat: send one this often until Ctrl-C")
    ctl.add_argument("--json", action="store_true", help="status: one JSON object")
    ctl.set_defaults(func=control)
