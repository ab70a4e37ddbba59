from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar, final

from schemas.records import TopOfBook

class _Level(Protocol):
    @property
    def price(self) -> str: ...
    @property
    def size(self) -> str: ...

class _Update(Protocol):
    """What the books read of a `schemas.records.BookUpdate`."""

    @property
    def bids(self) -> tuple[_Level, ...]: ...
    @property
    def asks(self) -> tuple[_Level, ...]: ...
    @property
    def update_id(self) -> int: ...

@final
class Encoded:
    """A record, Avro-encoded by the compiled path: all a sink needs to produce it."""

    @property
    def kind(self) -> str: ...
    @property
    def schema(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def ts_exchange_ns(self) -> int: ...

@final
class BookStep:
    """What one book update produced: the records to publish in order, and whether it revealed a gap or was dropped."""

    @property
    def kind(self) -> str:
        """What the frame was: "book"."""
    @property
    def records(self) -> tuple[Encoded, ...]: ...
    @property
    def gap(self) -> bool: ...
    @property
    def dropped(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def topic(self) -> str:
        """The venue topic or stream of the frame (to resubscribe on a gap); "" when applied from a record."""
    @property
    def symbol(self) -> str: ...
    @property
    def update_type(self) -> str: ...
    @property
    def ts_exchange_ns(self) -> int: ...

@final
class Book:
    """One order book on its own, levels only (no continuity): what feature code folds records into."""

    def __init__(self) -> None: ...
    def reset(self, update: _Update) -> None: ...
    def apply(self, update: _Update) -> None: ...
    @property
    def update_id(self) -> int: ...
    @property
    def fresh(self) -> bool: ...
    def top(self, levels: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]: ...
    def count(self, bid: bool) -> int: ...
    def level(self, bid: bool, price: float) -> tuple[str, str] | None: ...
    def prices(self, bid: bool) -> list[float]: ...

@final
class BookBuilder:
    """The order books of a feed, keyed by (venue, symbol, depth)."""

    def __init__(self) -> None: ...
    def apply(self, update: object) -> BookStep:
        """Apply a `BookUpdate` record; ValueError (naming the field) when it is not one the schema can carry."""
    def book(self, venue: str, symbol: str, depth: int) -> Book | None: ...

def binance_hot(frame: str | bytes, ts_recv_ns: int, venue: str, books: BookBuilder) -> Encoded | BookStep | None:
    """A Binance trade, aggTrade or bookTicker record, or a depth update's step on `books`; None: Python decides."""

def bybit_hot(frame: str | bytes, ts_recv_ns: int, venue: str, books: BookBuilder) -> BookStep | None:
    """A Bybit order-book frame's step on `books`; None when the Python parser must decide."""

@final
class RecordDecoder:
    """One Avro schema compiled to a decoder that builds the project's record objects."""

    def __init__(self, schema: str, classes: Mapping[str, type[Any]]) -> None:
        """`schema`: its JSON text; `classes`: every record's full name to the class that holds it."""
    def decode(self, payload: bytes, offset: int) -> Any:
        """The record in `payload[offset:]`; ValueError when it is not exactly one body of this schema."""

_RawColumn = tuple[int, int, list[bytes | None], Any]

@final
class ColumnDecoder:
    """One Avro schema compiled to a decoder of whole batches into Arrow column buffers."""

    def __init__(self, schema: str, decimal_fields: list[str], time_fields: list[str], scale: int,
                 time_min_ns: int) -> None:
        """`decimal_fields`/`time_fields`: dotted paths checked against Decimal(38, `scale`) and DateTime64(9)."""
    def decode(self, payloads: list[bytes], offset: int) -> tuple[list[_RawColumn], list[tuple[int, str]]]:
        """Columns of the good rows (length, nulls, buffers, child) and, per bad row, its index and reason."""

@final
class FeatureEngine:
    """All symbols' feature state (`features.rs`), made from a FeatureSpec's numbers; pickles as compact bytes."""

    def __init__(self, liquidation: tuple[list[int], list[int], list[tuple[int, int]]],
                 burst: tuple[int, int, int, float], largest_window_ns: int, median_window_ns: int,
                 trade_windows_ns: list[int], depth_levels: list[int], oi_windows_ns: list[int],
                 lateness_ns: float) -> None:
        """`liquidation`: kept windows (ns), published and (half, whole) acceleration indices into them;
        `burst`: (index of its window, window ns, baseline windows, sigma floor)."""
    def apply(self, record: object) -> bool:
        """Fold a record (or a `MarketEvent`, once) into its symbol; False when it was a duplicate or too late
        (counted either way)."""
    def update(self, record: object) -> tuple[int, tuple[float, ...]] | None:
        """`apply`, and at an applied liquidation its symbol's (watermark, values)."""
    def values(self, venue: str, symbol: str) -> tuple[int, tuple[float, ...]]:
        """One symbol's (watermark, values) in the spec's order; KeyError for a symbol never seen."""
    def symbols(self) -> list[tuple[str, str]]: ...
    def counts(self) -> list[tuple[str, int]]: ...
    def mid(self, venue: str, symbol: str) -> float | None: ...
    def book(self, venue: str, symbol: str) -> Book | None: ...
    def __getstate__(self) -> bytes: ...
    def __setstate__(self, state: bytes) -> None: ...

@final
class MarketEvent:
    """A market record's body decoded for the feature engine (`market.rs`): what it reads, what a vector names."""

    SCHEMA: str
    @property
    def venue(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def ts_event_ns(self) -> int: ...
    @property
    def ts_recv_ns(self) -> int: ...
    @property
    def position_side(self) -> Literal["LONG", "SHORT"] | None:
        """A liquidation's side; None for other records."""

@final
class MarketDecoder:
    """Bodies of the current market schemas behind their headers, straight into `MarketEvent`s."""

    def __init__(self, schemas: Mapping[bytes, tuple[str, str]]) -> None:
        """`schemas`: each header to (schema name, schema JSON text)."""
    def decode(self, payload: bytes) -> MarketEvent | None:
        """None unless `payload` is exactly one body of a market schema behind that schema's header."""

@final
class TopsAsOf:
    """The recent tops of book of one symbol, for the top as of a past event time (`tops.rs`; the decide step's
    join). Held as columns, not objects: a snapshot pickles them as one byte string, and the garbage collector has
    nothing to walk."""

    def __init__(self, kept: int) -> None:
        """At least the newest `kept` tops are held once that many came; at twice as many the oldest go, so that
        `kept` remain (ValueError below 1)."""
    def add(self, top: TopOfBook) -> None:
        """Keep a top (its venue and symbol become the book's); one older than the newest held is ignored."""
    def as_of(self, ts_ns: int) -> TopOfBook | None:
        """The newest top with `ts_event_ns <= ts_ns` (the agent's event-time merge has delivered every earlier one);
        None when none held is that old."""
    def __len__(self) -> int: ...
    def __getstate__(self) -> bytes: ...
    def __setstate__(self, state: bytes) -> None:
        """ValueError for bytes `__getstate__` did not write."""

_T = TypeVar("_T")

@final
class Ordered(Generic[_T]):
    """Complete sources, each an iterable of (ts_ns, offset, item) in offset order, merged lazily (`merge.rs`; the
    rule: `streams.merge.ordered`) as (source rank, ts_ns, item)."""

    def __init__(self, sources: Iterable[Iterable[tuple[int, int, _T]]]) -> None: ...
    def __iter__(self) -> Ordered[_T]: ...
    def __next__(self) -> tuple[int, int, _T]: ...

@final
class SymbolRisk:
    """The per-symbol risk state the decide step folds every market record into (`risk.rs`; the rule:
    `tests/oracle/risk.py`): the heartbeat for the dead-man switch, the liquidation-spike circuit breaker, the
    pause after an abnormal loss. `limits` are a `decision.risk.RiskLimits` (frozen: read once per object)."""

    def __init__(self, window_ns: int) -> None:
        """A fresh state whose liquidation-spike window is `window_ns` long."""
    @staticmethod
    def for_limits(limits: Any) -> SymbolRisk: ...
    def observe(self, record: Any, limits: Any) -> str | None:
        """Fold any record of the symbol (its `ts_event_ns`; a `Liquidation`'s notional too); returns a cancel-all
        reason when a rule has just tripped."""
    def heartbeat_lost(self, now_ns: int, limits: Any) -> str | None:
        """When nothing arrived for longer than the timeout: start the cool-down and say why (dead-man switch)."""
    def on_outcome(self, outcome: Any, limits: Any) -> str | None:
        """A closed order that lost abnormally much (a `decision.ledger.Outcome`) pauses the symbol; returns why."""
    @property
    def heartbeat_ns(self) -> int | None: ...
    @property
    def heartbeat_lost_until_ns(self) -> int: ...
    @property
    def paused_until_ns(self) -> int: ...
    @property
    def pause_reason(self) -> str | None: ...
    @property
    def window_notional(self) -> float:
        """The liquidation notional within the spike window as of the heartbeat."""
    @property
    def counts(self) -> dict[str, int]:
        """How often each rule tripped, in first-seen order (a copy)."""
    def __getstate__(self) -> bytes: ...
    def __setstate__(self, state: bytes) -> None:
        """ValueError for bytes `__getstate__` did not write."""

@final
class EventTimeMerge(Generic[_T]):
    """The event-time merge of an agent's inputs (`merge.rs`; the rule: `streams/merge.py`); sources are topics."""

    def __init__(self) -> None: ...
    def add_source(self, source: str) -> None:
        """A source the merge waits on, ranked after those added before it (ties in event time)."""
    def push(self, source: str, ts_ns: int, offset: int, item: _T) -> None:
        """Queue an item; one earlier in time than its source's newest keeps its place behind it."""
    def release(self, idle: Callable[[str], bool]) -> list[_T]:
        """Every item no source can precede any more; `idle(source)`: it has nothing unread right now."""
    def resume_points(self) -> dict[str, int]:
        """Each source's newest time as of its last released item, for a snapshot."""
    def resume(self, points: Mapping[Any, int]) -> None:
        """Continue from a snapshot's `resume_points`; sources this merge does not wait on are ignored."""
    @property
    def sources(self) -> dict[str, int]: ...
    @property
    def newest_ns(self) -> dict[str, int]: ...
    def __len__(self) -> int: ...

_Made = tuple[int, Any, int, tuple[float, ...]]
_Counts = dict[str, tuple[int, int, int]]

@final
class MarketFold:
    """The features agent's batch path (`fold.rs`): freshness, decode, merge and fold of a consumed batch."""

    def __init__(self, decoder: MarketDecoder, topics: set[str], fallback: Callable[[str, bytes | None, bytes | None,
                 int, int], Any], high: Callable[[str, int], int]) -> None:
        """`fallback`: a body the events path does not read, as a record or None (dead-lettered); `high`: the
        high-water mark of (topic, partition), -1 when unknown."""
    def fold(self, batch: list[Any], slot: Callable[[int], tuple[FeatureEngine, EventTimeMerge[Any], dict[str, int]]],
             read: dict[tuple[str, int], int]) -> tuple[list[Any], list[_Made], _Counts]:
        """The batch's messages of its topics folded in; returns the other messages, the decision points
        (partition, liquidation, watermark, values) and by topic (decoded, folded, dead letters)."""
    def drain(self, partition: int, parts: tuple[FeatureEngine, EventTimeMerge[Any], dict[str, int]],
              read: dict[tuple[str, int], int]) -> tuple[list[_Made], _Counts]:
        """Release and fold what waited on inputs since read to their end."""
