"""Deterministic order ids and a bounded memory of recently seen ids (redeliveries must change nothing)."""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass, field

__all__ = ["MAX_CLIENT_ID_CHARS", "RecentIds", "entry_order_id", "exit_order_id", "order_event_id"]

MAX_CLIENT_ID_CHARS = 36  # Bybit orderLinkId and Binance newClientOrderId both allow at most 36
_DIGEST_CHARS = 32  # 128 bits of sha256: collisions are out of reach at any realistic order count


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_CHARS]


def entry_order_id(venue: str, symbol: str, prediction_id: str, arm_key: str) -> str:
    """The same decision (venue, symbol, prediction, arm) always gets the same id, live or replayed."""
    return "lb" + _digest(f"{venue}|{symbol}|{prediction_id}|{arm_key}")


def exit_order_id(entry_id: str) -> str:
    """The reduce-only exit of an entry order: derived from the entry id, so it is deterministic too."""
    return "lx" + _digest(f"{entry_id}|exit")


def order_event_id(client_order_id: str, sequence: int) -> str:
    """client_order_id:sequence, the n-th event of one order (1-based)."""
    return f"{client_order_id}:{sequence}"


@dataclass(eq=False)
class RecentIds:
    """The last `capacity` ids seen, in arrival order; older ids are forgotten.

    Kept as 64-bit digests in a flat column: a symbol's thousands of ids then pickle as one buffer (the agents'
    snapshots block their thread); two ids share a digest with odds of about `capacity` in 2**64.
    """

    capacity: int = 8192
    order: array[int] = field(default_factory=lambda: array("q"))  # digests; those before `head` are forgotten
    head: int = 0
    seen: set[int] = field(default_factory=set)

    def __contains__(self, key: str) -> bool:
        return _digest64(key) in self.seen

    def remember(self, key: str) -> bool:
        """False when `key` was seen recently (a redelivery); otherwise remember it."""
        digest = _digest64(key)
        if digest in self.seen:
            return False
        self.seen.add(digest)
        self.order.append(digest)
        if len(self.order) - self.head > self.capacity:
            self.seen.discard(self.order[self.head])
            self.head += 1
            if self.head >= self.capacity:  # forgotten ones go in bulk: a column cannot drop its head cheaply
                del self.order[:self.head]
                self.head = 0
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecentIds):
            return NotImplemented
        return (self.capacity, self.order[self.head:]) == (other.capacity, other.order[other.head:])

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __getstate__(self) -> tuple[int, array[int]]:
        return self.capacity, self.order[self.head:]

    def __setstate__(self, state: tuple[int, array[int]]) -> None:
        self.capacity, self.order = state
        self.head = 0
        self.seen = set(self.order)


def _digest64(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)
