"""The operator's safety controls folded from the control topic: the kill switch and the dead-man switch.

Plain state, no I/O: the agents feed it each `ControlCommand` with the moment they read it (their own clock, so
an issuer's clock skew cannot fire or hold off the dead-man switch) and ask it each tick what is in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.records import ControlCommand

__all__ = ["SafetyControls"]


@dataclass
class SafetyControls:
    """The kill switch (engaged with its reason, or not) and the dead-man switch (armed with its timeout, or not)."""

    kill_reason: str | None = None
    kill_command_id: str | None = None  # the command that engaged it: the cancels' event ids derive from it
    dead_man_timeout_ns: int | None = None
    last_heartbeat_ns: int | None = None  # when the last heartbeat (or the arm) was read, by the reader's clock
    applied: int = 0

    def apply(self, command: ControlCommand, read_ns: int) -> None:
        """Fold one command, read at `read_ns` (monotonic ns of the reader)."""
        self.applied += 1
        if command.action == "KILL":
            if self.kill_reason is None:
                self.kill_reason = f"{command.reason} ({command.operator})"
                self.kill_command_id = command.command_id
        elif command.action == "RESUME":
            self.kill_reason = self.kill_command_id = None
            if self.dead_man_timeout_ns is not None:
                self.last_heartbeat_ns = read_ns  # still armed: the heartbeats get one timeout to resume
        elif command.action == "ARM_DEAD_MAN":
            if command.dead_man_timeout_s is None or not command.dead_man_timeout_s > 0:
                return  # the CLI refuses it; a hand-made one arms nothing rather than firing at once
            self.dead_man_timeout_ns = int(command.dead_man_timeout_s * 1e9)
            self.last_heartbeat_ns = read_ns
        elif command.action == "HEARTBEAT":
            self.last_heartbeat_ns = read_ns
        elif command.action == "DISARM_DEAD_MAN":
            self.dead_man_timeout_ns = self.last_heartbeat_ns = None

    def dead_man_due(self, now_ns: int) -> str | None:
        """The reason to fire the dead-man switch now (armed, and no heartbeat within its timeout), else None."""
        if self.dead_man_timeout_ns is None or self.last_heartbeat_ns is None or self.kill_reason is not None:
            return None
        silent_ns = now_ns - self.last_heartbeat_ns
        if silent_ns <= self.dead_man_timeout_ns:
            return None
        timeout_s = self.dead_man_timeout_ns / 1e9
        return f"dead-man switch: no heartbeat for {silent_ns / 1e9:.1f} s (timeout {timeout_s:g} s)"
