"""What ClickHouse already holds of a partition past its committed offset: re-delivery after a crash skips it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

__all__ = ["Ranges", "Resume", "landed_ranges", "resume"]

_ISLANDS = """
SELECT _partition, min(_offset), max(_offset) FROM (
    SELECT _partition, _offset, _offset - row_number() OVER (PARTITION BY _partition ORDER BY _offset) AS island
    FROM {table:Identifier}
    WHERE _topic_id = {topic_id:String} AND has({partitions:Array(Int32)}, _partition)
      AND _offset >= transform(_partition, {partitions:Array(Int32)}, {since:Array(Int64)}, toInt64(0))
) GROUP BY _partition, island ORDER BY 1, 2"""

Ranges = list[tuple[int, int]]


def landed_ranges(client: Client, table: str, topic_id: str, since: Mapping[int, int]) -> dict[int, Ranges]:
    """Per partition, the runs of consecutive offsets >= its `since` in `table`: inclusive (first, last), in order.

    One query for all of a table's partitions (one per partition made a rebalance of 90 take 0.4 s)."""
    partitions = sorted(since)
    rows = client.query(_ISLANDS, parameters={"table": table, "topic_id": topic_id, "partitions": partitions,
                                              "since": [since[p] for p in partitions]}).result_rows
    out: dict[int, Ranges] = {p: [] for p in partitions}
    for partition, first, last in rows:
        out[int(partition)].append((int(first), int(last)))
    return out


@dataclass(slots=True)
class Resume:
    """Where to read a partition from, and the offsets after it that landed already (a partial insert's)."""

    start: int
    skip: Ranges = field(default_factory=list)

    def landed(self, offset: int) -> bool:
        """Whether `offset` is in ClickHouse already; ranges behind the reader are dropped as it passes them."""
        while self.skip and self.skip[0][1] < offset:
            self.skip.pop(0)
        return bool(self.skip) and self.skip[0][0] <= offset


def resume(committed: int, ranges: Ranges) -> Resume:
    """Starts past the runs that begin at the committed offset; later runs (holes between them) are skipped on read."""
    start, rest = committed, list(ranges)
    while rest and rest[0][0] <= start:
        start = max(start, rest.pop(0)[1] + 1)
    return Resume(start, rest)
