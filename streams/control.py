"""The control topic: operators' safety commands written as audit records, and read back by every worker in full.

Every worker must see every command, so the topic is read outside any consumer group: each reader assigns all of
its partitions from the beginning (commands are few) and folds them before the worker trades, then follows it.
All commands share one key (their scope), so they keep their order in one partition.
"""

from __future__ import annotations

import getpass
import logging
import os
import queue
import socket
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from liqbot.errors import LiqbotError
from schemas.records import ControlAction, ControlCommand
from streams.clients import Clients
from streams.serde import SerdeError

__all__ = ["ALL", "ControlReader", "default_operator", "new_command", "send_command"]

log = logging.getLogger(__name__)

ALL = "ALL"
Read = tuple[ControlCommand, int]  # the command, and when it was read (monotonic ns)


def default_operator() -> str:
    """Who issues a command: LIQBOT_OPERATOR, else user@host."""
    return os.environ.get("LIQBOT_OPERATOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def new_command(action: ControlAction, reason: str, operator: str, *, timeout_s: float | None = None) -> ControlCommand:
    """A command with a fresh id, stamped now; operators must say why."""
    if not reason.strip():
        raise LiqbotError(f"{action}: say why with --reason (it is the audit record's)")
    if action == "ARM_DEAD_MAN" and (timeout_s is None or not timeout_s > 0):
        raise LiqbotError("ARM_DEAD_MAN needs --timeout SECONDS > 0")
    return ControlCommand(command_id=uuid.uuid4().hex, scope=ALL, action=action, operator=operator, reason=reason,
                          ts_issued_ns=time.time_ns(), dead_man_timeout_s=timeout_s)


def send_command(clients: Clients, command: ControlCommand, timeout_s: float = 30.0) -> None:
    """Produces the command and waits for Kafka's acknowledgement: an operator must know it is on record."""
    clients.producer.send(clients.topics.name("control"), command, command.kafka_key())
    if clients.producer.flush(timeout_s) or clients.producer.failed:
        raise LiqbotError(f"the {command.action} command was not acknowledged by Kafka within {timeout_s:g} s: "
                          "check the broker (`liqbot topics`) and send it again")


class ControlReader(threading.Thread):
    """Reads the control topic from its beginning, on a thread of its own; `drain()` hands over what was read."""

    def __init__(self, clients: Clients) -> None:
        super().__init__(name="control-reader", daemon=True)
        self._clients = clients
        self._topic = clients.topics.name("control")
        self._consumer = Consumer({
            "bootstrap.servers": clients.settings.kafka.bootstrap_servers,
            "client.id": f"{clients.settings.kafka.client_id}-control",
            "group.id": f"control-reader-{uuid.uuid4().hex}",  # never commits: a group id is only required
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "fetch.wait.max.ms": 50,  # a command must reach the worker within a second
        })
        self._read: queue.SimpleQueue[Read] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.errors = 0

    def catch_up(self, timeout_s: float = 30.0) -> list[Read]:
        """Assigns the topic from its beginning and reads up to its end now; the thread then follows it."""
        metadata = self._consumer.list_topics(self._topic, timeout=timeout_s).topics[self._topic]
        parts = [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        marks = {tp.partition: self._consumer.get_watermark_offsets(tp, timeout=timeout_s) for tp in parts}
        ends = {p: high for p, (low, high) in marks.items() if high > low}  # an empty partition is read already
        self._consumer.assign(parts)
        read: list[Read] = []
        deadline = time.monotonic() + timeout_s
        while any(self._position(p) < end for p, end in ends.items()):  # unfetched: an invalid (negative) position
            if time.monotonic() > deadline:
                raise LiqbotError(f"could not read {self._topic} to its end within {timeout_s:g} s: check the broker")
            read.extend(self._poll(0.1))
        return read

    def run(self) -> None:
        while not self._stop.is_set():
            for item in self._poll(0.1):
                self._read.put(item)
        self._consumer.close()

    def drain(self) -> list[Read]:
        """What the thread read since the last call, in order."""
        out: list[Read] = []
        while True:
            try:
                out.append(self._read.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self._stop.set()

    def _position(self, partition: int) -> int:
        return int(self._consumer.position([TopicPartition(self._topic, partition)])[0].offset)

    def _poll(self, timeout_s: float) -> list[Read]:
        out: list[Read] = []
        for message in self._consumer.consume(num_messages=500, timeout=timeout_s):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("control topic: %s", error)
                continue
            try:
                record = self._clients.serde.decode(self._topic, message.value() or b"")
            except SerdeError as exc:  # a worker must not stop on it: the command is lost to it, say so loudly
                self.errors += 1
                log.error("control topic offset %s: undecodable command skipped (%s)", message.offset(), exc)
                continue
            if isinstance(record, ControlCommand):
                out.append((record, time.monotonic_ns()))
        return out
