"""Times on the command line: ISO 8601 in UTC unless it says otherwise, or epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time_ms"]


def parse_time_ms(text: str) -> int:
    """`2026-12-07T10:00:00Z`, `2026-12-07 10:00`, `2026-12-07` or `1796637600000` as epoch milliseconds."""
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (give ISO 8601, e.g. 2026-12-07T10:00:00Z, or epoch ms)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
