"""Deterministic order ids and a bounded memory of recently seen ids (redeliveries must change nothing)."""

from __future__ import annotations

import hashlib
from collections import deque
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


@dataclass
class RecentIds:
    """The last `capacity` ids seen, in arrival order; older ids are forgotten."""

    capacity: int = 8192
    order: deque[str] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)

    def __contains__(self, key: str) -> bool:
        return key in self.seen

    def remember(self, key: str) -> bool:
        """False when `key` was seen recently (a redelivery); otherwise remember it."""
        if key in self.seen:
            return False
        self.seen.add(key)
        self.order.append(key)
        if len(self.order) > self.capacity:
            self.seen.discard(self.order.popleft())
        return True
