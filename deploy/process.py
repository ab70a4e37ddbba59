"""Local JVM services started in the background: spawn, record the pid, find it again, stop it by pid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["is_running", "ports_in_use", "read_state", "spawn", "stop_pid"]


def spawn(cmd: list[str], log_path: Path, cwd: Path) -> int:
    """Start `cmd` in its own session (it outlives the CLI), output appended to `log_path`; returns its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, start_new_session=True)
    # Popen can return while the child is still the forked Python (empty /proc cmdline, seen here);
    # wait for the exec so that pid checks by command line are meaningful from now on.
    deadline = time.monotonic() + 10.0
    while not is_running(proc.pid, cmd[0]) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc.pid


def read_state(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def is_running(pid: int, marker: str) -> bool:
    """True when `pid` is alive and its command line holds `marker` (a reused pid does not count)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(marker.encode() in part for part in cmdline)


def stop_pid(pid: int, marker: str, timeout_s: float = 30.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout_s`; False when the process was not running."""
    if not is_running(pid, marker):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while is_running(pid, marker):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        _reap(pid)
        time.sleep(0.05)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the service is our own child (tests), so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def ports_in_use(*ports: int) -> list[int]:
    """Those of `ports` that something already listens on at 127.0.0.1."""
    busy = []
    for port in ports:
        with socket.socket() as s:
            # as servers do: a port whose last connections linger in TIME_WAIT is free to listen on
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy
