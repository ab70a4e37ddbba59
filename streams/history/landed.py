"""What ClickHouse already holds of a partition past its committed offset: re-delivery after a crash skips it."""

from __future__ import annotations

from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

__all__ = ["Resume", "landed_ranges", "resume"]

_ISLANDS = """
SELECT min(_offset), max(_offset) FROM (
    SELECT _offset, _offset - row_number() OVER (ORDER BY _offset) AS island FROM {table:Identifier}
    WHERE _topic_id = {topic_id:String} AND _partition = {partition:Int32} AND _offset >= {since:Int64}
) GROUP BY island ORDER BY 1"""


def landed_ranges(client: Client, table: str, topic_id: str, partition: int, since: int) -> list[tuple[int, int]]:
    """Runs of consecutive offsets >= `since` present in `table`, as inclusive (first, last) pairs in order."""
    rows = client.query(_ISLANDS, parameters={"table": table, "topic_id": topic_id, "partition": partition,
                                              "since": since}).result_rows
    return [(int(first), int(last)) for first, last in rows]


@dataclass(slots=True)
class Resume:
    """Where to read a partition from, and the offsets after it that landed already (a partial insert's)."""

    start: int
    skip: list[tuple[int, int]] = field(default_factory=list)

    def landed(self, offset: int) -> bool:
        """Whether `offset` is in ClickHouse already; ranges behind the reader are dropped as it passes them."""
        while self.skip and self.skip[0][1] < offset:
            self.skip.pop(0)
        return bool(self.skip) and self.skip[0][0] <= offset


def resume(committed: int, ranges: list[tuple[int, int]]) -> Resume:
    """Starts past the runs that begin at the committed offset; later runs (holes between them) are skipped on read."""
    start, rest = committed, list(ranges)
    while rest and rest[0][0] <= start:
        start = max(start, rest.pop(0)[1] + 1)
    return Resume(start, rest)
