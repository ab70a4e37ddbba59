from typing import final

@final
class Encoded:
    """A frame's one record, Avro-encoded by the compiled path: all a sink needs to produce it."""

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

def binance_hot(frame: str, ts_recv_ns: int, venue: str) -> Encoded | None:
    """The record of a Binance trade, aggTrade or bookTicker frame, or None when the Python parser must decide."""
