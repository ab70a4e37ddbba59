"""A worker's safety controls: the control topic followed, the dead-man switch watched, obeyed on each tick.

The reader thread only reads; folding, firing the dead-man switch and cancelling happen on the agents' reader
thread (the tick), which owns the decide states.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from decision.controls import SafetyControls
from schemas.records import ControlCommand
from streams.clients import Clients
from streams.control import ControlReader, new_command

__all__ = ["WorkerControls"]

log = logging.getLogger(__name__)


class WorkerControls:
    """The safety controls in force for this worker, from every command on the control topic."""

    def __init__(self, clients: Clients) -> None:
        self.state = SafetyControls()
        self._clients = clients
        self._reader = ControlReader(clients)
        self.identity = f"dead-man@{socket.gethostname()}:{os.getpid()}"

    def start(self) -> None:
        """Folds the whole topic before the worker trades (a restart must not forget an engaged kill switch)."""
        for command, read_ns in self._reader.catch_up():
            self._apply(command, read_ns, replayed=True)
        if self.state.kill_reason is not None:
            log.warning("starting with the kill switch engaged: %s", self.state.kill_reason)
        self._reader.start()

    def stop(self) -> None:
        self._reader.stop()
        self._reader.join(timeout=5)

    def tick(self) -> SafetyControls:
        """Folds what arrived and fires the dead-man switch when due; returns what is in force now."""
        for command, read_ns in self._reader.drain():
            self._apply(command, read_ns, replayed=False)
        due = self.state.dead_man_due(time.monotonic_ns())
        if due is not None:
            command = new_command("KILL", due, self.identity)
            self._apply(command, time.monotonic_ns(), replayed=False)  # obeyed now, not after its round trip
            self._clients.producer.send(self._clients.topics.name("control"), command, command.kafka_key())
        return self.state

    def report(self) -> dict[str, object]:
        timeout = self.state.dead_man_timeout_ns
        return {"kill_switch": self.state.kill_reason, "dead_man_timeout_s": None if timeout is None else timeout / 1e9,
                "commands": self.state.applied, "undecodable": self._reader.errors}

    def _apply(self, command: ControlCommand, read_ns: int, *, replayed: bool) -> None:
        self.state.apply(command, read_ns)
        if not replayed and command.action != "HEARTBEAT":
            log.warning("control: %s by %s (%s); kill switch %s", command.action, command.operator, command.reason,
                        self.state.kill_reason or "clear")
