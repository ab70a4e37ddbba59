"""What every venue adapter shares: the parse result, the parse error, time and decimal helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from liqbot_core import BookBuilder as NativeBooks  # the compiled path (core/)
from liqbot_core import BookStep, Encoded

from liqbot.errors import LiqbotError
from schemas.records import AvroRecord

__all__ = [
    "BookStep", "Encoded", "FrameParser", "NativeBooks", "ParseError", "Parsed", "all_decimal_text", "decimal_text",
    "json_object", "ms_to_ns", "reading", "text_field",
]

_NS_PER_MS = 1_000_000


class ParseError(LiqbotError):
    """A frame that is not valid venue JSON of a known shape; the message names topic and field."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one frame became: its kind (trade, liquidation, book, ticker, control, ignored, ...) and records."""

    kind: str
    records: tuple[AvroRecord, ...] = ()
    topic: str = ""


class FrameParser(Protocol):
    """A venue's public-stream parser: one instance per connection (it may keep per-symbol state)."""

    venue: str

    def parse(self, frame_text: str | bytes, ts_recv_ns: int) -> Parsed: ...

    def encoded(self, frame_text: str | bytes, ts_recv_ns: int, books: NativeBooks) -> Encoded | BookStep | None:
        """The frame through the compiled path when it takes it, else None (then `parse`).

        Its one record encoded, or the step of its book update applied to `books` (the ingest's books).
        """
        ...


def json_object(text: str | bytes, what: str = "frame") -> dict[str, Any]:
    """The JSON object a frame or reply must be; anything else is a ParseError."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ParseError(f"{what} is a JSON {type(value).__name__}, expected an object")
    return value


@contextmanager
def reading(where: str, what: str = "frame") -> Iterator[None]:
    """Turns what reading a malformed frame raises (missing keys, wrong types) into a ParseError naming where."""
    try:
        yield
    except ParseError:
        raise
    except KeyError as exc:
        raise ParseError(f"{where}: missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ParseError(f"{where}: malformed {what}: {exc}") from exc


def ms_to_ns(value: Any) -> int:
    """Venue milliseconds (int or decimal string) to integer nanoseconds."""
    return int(value) * _NS_PER_MS


def decimal_text(topic: str, name: str, value: Any) -> str:
    """Prices and sizes stay the venue's decimal text; anything else is rejected, not coerced."""
    if not isinstance(value, str) or not _is_decimal(value):
        raise ParseError(f"topic {topic}: field {name!r} = {value!r} is not a decimal string")
    return value


def all_decimal_text(values: list[Any]) -> bool:
    """Whether every value is a decimal string, with one regex call for the lot (book levels come by hundreds)."""
    if not all(type(value) is str for value in values):
        return False
    joined = ",".join(values)
    # a comma inside a value would split it in two and still match: the count of commas catches that
    return joined.count(",") == len(values) - 1 and _DECIMALS.fullmatch(joined) is not None if values else True


def text_field(topic: str, name: str, value: Any) -> str:
    """Symbols and ids: a non-empty string, or the frame is rejected."""
    if not isinstance(value, str) or not value:
        raise ParseError(f"topic {topic}: field {name!r} = {value!r} is not a non-empty string")
    return value


_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DECIMALS = re.compile(rf"{_DECIMAL.pattern}(?:,{_DECIMAL.pattern})*")


def _is_decimal(text: str) -> bool:
    return _DECIMAL.fullmatch(text) is not None
