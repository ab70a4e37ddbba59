"""Typed Python mirrors of the `.avsc` records; a test keeps them field-for-field equal to the schemas."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Self

__all__ = [
    "RECORD_TYPES",
    "ArmPrediction",
    "AvroRecord",
    "BookLevel",
    "BookUpdate",
    "BookUpdateType",
    "ControlAction",
    "ControlCommand",
    "DeadLetter",
    "FeatureVector",
    "FundingRate",
    "Instrument",
    "Liquidation",
    "Liquidity",
    "OpenInterest",
    "OrderCancel",
    "OrderEvent",
    "OrderIntent",
    "OrderStatus",
    "Position",
    "PositionSide",
    "Prediction",
    "Side",
    "Ticker",
    "TopOfBook",
    "Trade",
    "TradingMode",
]

Side = Literal["BUY", "SELL"]
PositionSide = Literal["LONG", "SHORT"]
BookUpdateType = Literal["SNAPSHOT", "DELTA", "RESYNC"]
TradingMode = Literal["PAPER", "LIVE"]
OrderStatus = Literal["ACCEPTED", "REJECTED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED"]
Liquidity = Literal["MAKER", "TAKER"]
ControlAction = Literal["KILL", "RESUME", "ARM_DEAD_MAN", "HEARTBEAT", "DISARM_DEAD_MAN"]


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


class AvroRecord:
    """Base of every record: `SCHEMA` names its `.avsc`; flat records convert field by field."""

    __slots__ = ()
    SCHEMA: ClassVar[str]
    KEY_FIELD: ClassVar[str] = "symbol"  # the field that is the Kafka key (partitioning)

    def kafka_key(self) -> str:
        return str(getattr(self, self.KEY_FIELD))

    def to_avro(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _field_names(type(self))}

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        return cls(**datum)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.Trade"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    taker_side: Side
    price: str
    size: str
    tick_direction: str | None = None
    block_trade: bool = False
    rpi: bool | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Liquidation(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.Liquidation"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    position_side: PositionSide
    bankruptcy_price: str
    size: str
    feed: str


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: str
    size: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BookUpdate(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.BookUpdate"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    update_type: BookUpdateType
    depth: int
    update_id: int
    seq: int | None
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    prev_update_id: int | None = None

    def to_avro(self) -> dict[str, Any]:
        datum = {name: getattr(self, name) for name in _field_names(BookUpdate)}
        datum["bids"] = [{"price": lv.price, "size": lv.size} for lv in self.bids]
        datum["asks"] = [{"price": lv.price, "size": lv.size} for lv in self.asks]
        return datum

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        levels = {
            "bids": tuple(BookLevel(lv["price"], lv["size"]) for lv in datum["bids"]),
            "asks": tuple(BookLevel(lv["price"], lv["size"]) for lv in datum["asks"]),
        }
        return cls(**{**datum, **levels})


@dataclass(frozen=True, slots=True, kw_only=True)
class TopOfBook(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.TopOfBook"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    update_id: int
    bid_price: str
    bid_size: str
    ask_price: str
    ask_size: str
    mid: float
    microprice: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticker(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.Ticker"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    last_price: str | None = None
    mark_price: str | None = None
    index_price: str | None = None
    funding_rate: str | None = None
    next_funding_time_ns: int | None = None
    funding_interval_hours: int | None = None
    open_interest: str | None = None
    open_interest_value: str | None = None
    bid1_price: str | None = None
    ask1_price: str | None = None
    volume_24h: str | None = None
    turnover_24h: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.Instrument"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    status: str
    contract_type: str | None
    base_coin: str
    quote_coin: str
    tick_size: str
    qty_step: str
    min_order_qty: str
    max_order_qty: str
    min_notional: str | None = None
    max_leverage: str | None = None
    funding_interval_minutes: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenInterest(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.OpenInterest"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    interval: str
    open_interest: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingRate(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.FundingRate"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_exchange_ns: int
    ts_recv_ns: int
    funding_rate: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureVector(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.FeatureVector"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_recv_ns: int
    feature_spec: str
    values: tuple[float, ...]
    side: Side | None = None

    def to_avro(self) -> dict[str, Any]:
        datum = {name: getattr(self, name) for name in _field_names(FeatureVector)}
        datum["values"] = list(self.values)
        return datum

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        return cls(**{**datum, "values": tuple(datum["values"])})


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmPrediction:
    delta_bps: float
    valid_for_ms: int
    expected_net_return: float
    fill_probability: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.Prediction"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_recv_ns: int
    model_version: str
    feature_spec: str
    arms: tuple[ArmPrediction, ...]

    def to_avro(self) -> dict[str, Any]:
        datum = {name: getattr(self, name) for name in _field_names(Prediction)}
        datum["arms"] = [
            {name: getattr(arm, name) for name in _field_names(ArmPrediction)} for arm in self.arms
        ]
        return datum

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self:
        return cls(**{**datum, "arms": tuple(ArmPrediction(**a) for a in datum["arms"])})


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.OrderIntent"
    venue: str
    symbol: str
    client_order_id: str
    ts_event_ns: int
    ts_recv_ns: int
    mode: TradingMode
    side: Side
    price: str
    size: str
    post_only: bool
    reduce_only: bool
    valid_for_ms: int
    hold_ms: int
    take_profit_price: str | None
    stop_loss_price: str | None
    delta_bps: float
    expected_net_return: float
    fill_probability: float
    model_version: str
    prediction_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancel(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.OrderCancel"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    ts_recv_ns: int
    client_order_id: str | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEvent(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.OrderEvent"
    venue: str
    symbol: str
    event_id: str
    client_order_id: str
    venue_order_id: str | None
    ts_event_ns: int
    ts_recv_ns: int
    status: OrderStatus
    side: Side
    price: str
    size: str
    filled_size: str
    last_fill_price: str | None = None
    last_fill_size: str | None = None
    fee: str | None = None
    liquidity: Liquidity | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Position(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.Position"
    venue: str
    symbol: str
    event_id: str
    ts_event_ns: int
    mode: TradingMode
    size: str
    entry_price: str | None
    mark_price: str | None
    realised_pnl: float
    unrealised_pnl: float
    fees_paid: float
    funding_paid: float
    equity: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.DeadLetter"
    KEY_FIELD: ClassVar[str] = "source"
    source: str
    stage: str
    error: str
    error_type: str
    raw: bytes
    key: bytes | None
    partition: int | None
    offset: int | None
    ts_recv_ns: int | None
    ts_dead_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlCommand(AvroRecord):
    SCHEMA: ClassVar[str] = "liqbot.ControlCommand"
    KEY_FIELD: ClassVar[str] = "scope"
    command_id: str
    scope: str
    action: ControlAction
    operator: str
    reason: str
    ts_issued_ns: int
    dead_man_timeout_s: float | None = None


RECORD_TYPES: dict[str, type[AvroRecord]] = {
    cls.SCHEMA: cls
    for cls in (
        Trade, Liquidation, BookUpdate, TopOfBook, Ticker, Instrument, OpenInterest, FundingRate, FeatureVector,
        Prediction, OrderIntent, OrderCancel, OrderEvent, Position, DeadLetter, ControlCommand,
    )
}
