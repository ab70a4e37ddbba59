"""One wick order's life in event time; training labels and the paper venue both run exactly this.

A post-only limit rests until a trade prints *through* its price (a touch is not a fill: the queue ahead of
us may have taken it), is cancelled when T passes unfilled, and once filled is closed by a marketable exit at
the first trade after the holding horizon H, or at the trade that reaches take-profit or stop-loss. Entries
pay the maker fee, exits the taker fee, and an open position pays funding at each funding time it crosses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.records import Side

__all__ = ["ExitRule", "Fees", "OrderState", "Transition", "WickOrder", "prints_through"]

OrderState = Literal["RESTING", "OPEN", "EXPIRED", "CLOSED"]
Transition = Literal["FILLED", "EXPIRED", "TAKE_PROFIT", "STOP_LOSS", "HOLD_ELAPSED"]
_NS_PER_MS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class Fees:
    """Fractions of notional; defaults are Bybit's non-VIP USDT-perpetual schedule (0.02% maker, 0.055% taker)."""

    maker_rate: float = 0.0002
    taker_rate: float = 0.00055


@dataclass(frozen=True, kw_only=True)
class ExitRule:
    """When a filled position is closed: after `hold_ms`, or earlier at take-profit / stop-loss."""

    hold_ms: int = 60_000
    take_profit_bps: float = 60.0
    stop_loss_bps: float = 60.0


def prints_through(side: Side, limit: float, trade_price: float) -> bool:
    """A resting buy fills only when a trade prints below it, a sell only above it."""
    return trade_price < limit if side == "BUY" else trade_price > limit


@dataclass
class WickOrder:
    """Entry at `price` placed at `placed_ns`; prices are floats here, the venue adapter rounds to ticks."""

    side: Side
    price: float
    placed_ns: int
    valid_for_ms: int
    exit_rule: ExitRule = field(default_factory=ExitRule)
    fees: Fees = field(default_factory=Fees)
    state: OrderState = "RESTING"
    fill_ns: int | None = None
    exit_ns: int | None = None
    exit_price: float | None = None
    exit_reason: Transition | None = None
    funding: float = 0.0  # fraction of notional paid in funding (negative: received)

    @property
    def direction(self) -> int:
        return 1 if self.side == "BUY" else -1

    @property
    def take_profit_price(self) -> float:
        return self.price * (1.0 + self.direction * self.exit_rule.take_profit_bps * 1e-4)

    @property
    def stop_loss_price(self) -> float:
        return self.price * (1.0 - self.direction * self.exit_rule.stop_loss_bps * 1e-4)

    @property
    def expires_ns(self) -> int:
        return self.placed_ns + self.valid_for_ms * _NS_PER_MS

    def advance(self, ts_ns: int) -> Transition | None:
        """Event time moved to `ts_ns` (any record): an unfilled order past T is cancelled."""
        if self.state == "RESTING" and ts_ns > self.expires_ns:
            self.state = "EXPIRED"
            return "EXPIRED"
        return None

    def on_trade(self, ts_ns: int, price: float, *, at_front: bool = False) -> Transition | None:
        """A trade printed at `price`; returns what it did to this order, if anything. `at_front`: a trade at the
        price reached this order in its queue (the paper venue's queue model; labels never set it)."""
        if self.advance(ts_ns) is not None:
            return "EXPIRED"
        if self.state == "RESTING":
            if ts_ns > self.placed_ns and (at_front or prints_through(self.side, self.price, price)):
                self.state, self.fill_ns = "OPEN", ts_ns
                return "FILLED"
            return None
        if self.state == "OPEN" and self.fill_ns is not None and ts_ns > self.fill_ns:
            reason = self._exit_reason(ts_ns, price)
            if reason is not None:
                self.state, self.exit_ns, self.exit_price, self.exit_reason = "CLOSED", ts_ns, price, reason
            return reason
        return None

    def _exit_reason(self, ts_ns: int, price: float) -> Transition | None:
        assert self.fill_ns is not None
        if self.direction * (price - self.take_profit_price) >= 0:
            return "TAKE_PROFIT"
        if self.direction * (price - self.stop_loss_price) <= 0:
            return "STOP_LOSS"
        if ts_ns >= self.fill_ns + self.exit_rule.hold_ms * _NS_PER_MS:
            return "HOLD_ELAPSED"
        return None

    def on_funding(self, rate: float) -> None:
        """A funding time passed: longs pay `rate` of notional, shorts receive it (and the reverse when negative)."""
        if self.state == "OPEN":
            self.funding += self.direction * rate

    def net_return(self) -> float | None:
        """Realised return on entry notional after fees and funding; None until the position is closed."""
        if self.state != "CLOSED" or self.exit_price is None:
            return None
        gross = self.direction * (self.exit_price - self.price) / self.price
        exit_fee = self.fees.taker_rate * self.exit_price / self.price
        return gross - self.fees.maker_rate - exit_fee - self.funding
