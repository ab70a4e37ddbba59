"""The records of `__consumer_offsets`: offset commits, their tombstones, group deletions; pure parsing, no I/O.

Key and value layouts as Kafka's group coordinator writes them (`OffsetCommitKey`/`Value`, `GroupMetadataKey`,
`ConsumerGroupMetadataKey`), read the way Burrow's `core/internal/consumer/kafka_client.go` reads them, reimplemented.
The key starts with a big-endian int16: 0 and 1 are offset commits, 2 classic group metadata, 3 consumer-protocol
group metadata (KIP-848), higher ones other coordinator state this reader has no use for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from liqbot.errors import LiqbotError

__all__ = [
    "OFFSETS_TOPIC",
    "GroupDeleted",
    "GroupRecord",
    "OffsetCommit",
    "OffsetDeleted",
    "OffsetsParseError",
    "OffsetsRecord",
    "Skipped",
    "parse_record",
]

OFFSETS_TOPIC = "__consumer_offsets"

_OFFSET_KEYS = (0, 1)
_CLASSIC_GROUP_KEY = 2
_CONSUMER_GROUP_KEY = 3  # KIP-848 groups: a tombstone of this key is the group's deletion


class OffsetsParseError(LiqbotError):
    """A `__consumer_offsets` record that does not have the layout its version says."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetCommit:
    """One committed offset (`OffsetCommitValue` v0..v4 under an `OffsetCommitKey`)."""

    group: str
    topic: str
    partition: int
    offset: int
    leader_epoch: int  # -1 before v3, or when the consumer did not say
    metadata: str
    commit_timestamp_ms: int  # set by the group coordinator when it took the commit
    expire_timestamp_ms: int  # only v1 carries one; -1 otherwise


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetDeleted:
    """A tombstone on an offset key: the offset expired, was deleted, or its group was deleted."""

    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDeleted:
    """A tombstone on a group's metadata key: the group is gone."""

    group: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRecord:
    """A group's membership or assignment state; lag needs none of it."""

    group: str
    key_version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A coordinator record of a type this reader does not use (share or streams groups, assignments)."""

    key_version: int


OffsetsRecord = OffsetCommit | OffsetDeleted | GroupDeleted | GroupRecord | Skipped


class _Reader:
    """A cursor over big-endian Kafka protocol fields; every read checks that the bytes are there."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, size: int, field: str) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise OffsetsParseError(f"{self.what}: {field} needs {size} bytes at {self.pos}, "
                                    f"only {len(self.data) - self.pos} left ({self.data.hex()})")
        chunk, self.pos = self.data[self.pos:end], end
        return chunk

    def int16(self, field: str) -> int:
        return int(struct.unpack(">h", self.take(2, field))[0])

    def int32(self, field: str) -> int:
        return int(struct.unpack(">i", self.take(4, field))[0])

    def int64(self, field: str) -> int:
        return int(struct.unpack(">q", self.take(8, field))[0])

    def string(self, field: str) -> str:
        size = self.int16(field)
        return "" if size == -1 else self._text(size, field)  # -1 is a null string

    def compact_string(self, field: str) -> str:
        size = self.uvarint(field) - 1  # flexible versions store length + 1; 0 is null
        return "" if size == -1 else self._text(size, field)

    def uvarint(self, field: str) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1, field)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise OffsetsParseError(f"{self.what}: {field} is a varint longer than 5 bytes")

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint("tagged field count")):
            self.uvarint("tag")
            self.take(self.uvarint("tagged field size"), "tagged field")

    def _text(self, size: int, field: str) -> str:
        try:
            return self.take(size, field).decode()
        except UnicodeDecodeError as exc:
            raise OffsetsParseError(f"{self.what}: {field} is not UTF-8") from exc


def parse_record(key: bytes | None, value: bytes | None) -> OffsetsRecord:
    """One `__consumer_offsets` record as what it means; `OffsetsParseError` when its bytes do not fit its version."""
    if not key:
        raise OffsetsParseError("__consumer_offsets record without a key")
    reader = _Reader(key, "key")
    key_version = reader.int16("key version")
    if key_version in _OFFSET_KEYS:
        group, topic, partition = reader.string("group"), reader.string("topic"), reader.int32("partition")
        if value is None:
            return OffsetDeleted(group=group, topic=topic, partition=partition)
        return _offset_commit(group, topic, partition, value)
    if key_version in (_CLASSIC_GROUP_KEY, _CONSUMER_GROUP_KEY):
        group = reader.string("group")
        if value is None:
            return GroupDeleted(group=group)
        return GroupRecord(group=group, key_version=key_version)
    return Skipped(key_version=key_version)


def _offset_commit(group: str, topic: str, partition: int, value: bytes) -> OffsetCommit:
    reader = _Reader(value, f"offset value of {group}/{topic}/{partition}")
    version = reader.int16("value version")
    if not 0 <= version <= 4:
        raise OffsetsParseError(f"{reader.what}: unknown value version {version}")
    offset = reader.int64("offset")
    leader_epoch = reader.int32("leader epoch") if version >= 3 else -1
    metadata = reader.compact_string("metadata") if version >= 4 else reader.string("metadata")
    commit_timestamp_ms = reader.int64("commit timestamp")
    expire_timestamp_ms = reader.int64("expire timestamp") if version == 1 else -1
    if version >= 4:
        reader.skip_tagged_fields()  # v4's topic id is one; lag is keyed by topic name
    return OffsetCommit(group=group, topic=topic, partition=partition, offset=offset, leader_epoch=leader_epoch,
                        metadata=metadata, commit_timestamp_ms=commit_timestamp_ms,
                        expire_timestamp_ms=expire_timestamp_ms)
