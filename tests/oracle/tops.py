"""The test oracle of the compiled tops of book (`core/src/tops.rs`, `liqbot_core.TopsAsOf`): the Python class the
decide step joined predictions with the top of book as of their trigger's time before, kept so that tests prove
the compiled one gives the same tops. Tests only; the product never imports this.

A top older than the newest held is ignored (the newer one already stands for its time); the top as of a time is
the newest at or before it; at twice `kept` tops the oldest go, so that `kept` remain.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from dataclasses import dataclass, field

from schemas.records import TopOfBook

_TOP_TEXTS = 5  # event_id, bid_price, bid_size, ask_price, ask_size


@dataclass
class TopsAsOf:
    """Recent book tickers of one symbol in event-time order, for the top as of a past time, kept as columns."""

    kept: int  # at least this many of the newest tops are held (the product's `_TOPS_KEPT`)
    venue: str = ""
    symbol: str = ""
    times: array[int] = field(default_factory=lambda: array("q"))  # ts_event_ns
    ints: array[int] = field(default_factory=lambda: array("q"))  # ts_exchange_ns, ts_recv_ns, update_id
    floats: array[float] = field(default_factory=lambda: array("d"))  # mid, microprice
    texts: bytearray = field(default_factory=bytearray)  # the venue's text fields, UTF-8, one after another
    ends: array[int] = field(default_factory=lambda: array("q"))  # where each text field ends in `texts`

    def __len__(self) -> int:
        return len(self.times)

    def add(self, top: TopOfBook) -> None:
        if self.times and top.ts_event_ns < self.times[-1]:
            return  # out of order: the newer top already stands for this time
        self.venue, self.symbol = top.venue, top.symbol
        self.times.append(top.ts_event_ns)
        self.ints.extend((top.ts_exchange_ns, top.ts_recv_ns, top.update_id))
        self.floats.extend((top.mid, top.microprice))
        for text in (top.event_id, top.bid_price, top.bid_size, top.ask_price, top.ask_size):
            self.texts += text.encode()
            self.ends.append(len(self.texts))
        if len(self.times) >= 2 * self.kept:  # trimmed in halves: a column cannot drop its head one at a time
            self._drop(len(self.times) - self.kept)

    def _drop(self, count: int) -> None:
        cut = self.ends[_TOP_TEXTS * count - 1]
        del self.times[:count], self.ints[:3 * count], self.floats[:2 * count], self.texts[:cut]
        self.ends = array("q", [end - cut for end in self.ends[_TOP_TEXTS * count:]])

    def as_of(self, ts_ns: int) -> TopOfBook | None:
        """The newest top at or before `ts_ns` (the agent's event-time merge has delivered every earlier one)."""
        i = bisect.bisect_right(self.times, ts_ns) - 1
        if i < 0:
            return None
        first = _TOP_TEXTS * i
        bounds = [self.ends[first - 1] if first else 0, *self.ends[first:first + _TOP_TEXTS]]
        event_id, bid_price, bid_size, ask_price, ask_size = (
            self.texts[start:end].decode() for start, end in itertools.pairwise(bounds))
        ts_exchange_ns, ts_recv_ns, update_id = self.ints[3 * i:3 * i + 3]
        return TopOfBook(venue=self.venue, symbol=self.symbol, event_id=event_id, ts_event_ns=self.times[i],
                         ts_exchange_ns=ts_exchange_ns, ts_recv_ns=ts_recv_ns, update_id=update_id,
                         bid_price=bid_price, bid_size=bid_size, ask_price=ask_price, ask_size=ask_size,
                         mid=self.floats[2 * i], microprice=self.floats[2 * i + 1])
