"""The `__consumer_offsets` parser on byte-exact records, written out by hand from Kafka's message schemas.

The layouts are those of `OffsetCommitKey` / `OffsetCommitValue` / `GroupMetadataKey` (Kafka 4.1 group coordinator);
the broker test (test_lag_broker.py) parses what a real broker wrote.
"""

from __future__ import annotations

import pytest

from streams.lag.offsets_topic import (
    GroupDeleted,
    GroupRecord,
    OffsetCommit,
    OffsetDeleted,
    OffsetsParseError,
    Skipped,
    parse_record,
)

# key v1: int16 version 1, string "grp-a" (int16 length 5), string "market.trades" (13), int32 partition 2
KEY_V1 = bytes.fromhex("0001" "0005" "6772702d61" "000d" "6d61726b65742e747261646573" "00000002")
KEY_V0 = bytes.fromhex("0000") + KEY_V1[2:]
OFFSET_4242 = "0000000000001092"  # int64 4242
COMMIT_MS = "0000019af0c47dd0"  # int64 1764976000464 (2025-12-05T23:06:40.464Z)
COMMIT = 1_764_976_000_464


def test_value_v3_has_leader_epoch_before_metadata() -> None:
    value = bytes.fromhex("0003" + OFFSET_4242 + "00000007" + "0002" + "6869" + COMMIT_MS)
    assert parse_record(KEY_V1, value) == OffsetCommit(
        group="grp-a", topic="market.trades", partition=2, offset=4242, leader_epoch=7, metadata="hi",
        commit_timestamp_ms=COMMIT, expire_timestamp_ms=-1)


def test_value_v1_carries_an_expire_timestamp() -> None:
    expire = "0000019af5ead9d0"  # int64 1765062400464, one day later
    value = bytes.fromhex("0001" + OFFSET_4242 + "0000" + COMMIT_MS + expire)
    record = parse_record(KEY_V0, value)
    assert isinstance(record, OffsetCommit)
    assert (record.offset, record.leader_epoch, record.metadata) == (4242, -1, "")
    assert (record.commit_timestamp_ms, record.expire_timestamp_ms) == (COMMIT, 1_765_062_400_464)


@pytest.mark.parametrize("version", ["0000", "0002"])
def test_values_v0_and_v2_are_offset_metadata_timestamp(version: str) -> None:
    value = bytes.fromhex(version + OFFSET_4242 + "ffff" + COMMIT_MS)  # metadata null (-1)
    record = parse_record(KEY_V1, value)
    assert isinstance(record, OffsetCommit)
    assert (record.offset, record.metadata, record.commit_timestamp_ms, record.expire_timestamp_ms) == (
        4242, "", COMMIT, -1)


def test_value_v4_is_flexible_compact_metadata_and_tagged_topic_id() -> None:
    topic_id = "00112233445566778899aabbccddeeff"
    # compact string "hi": uvarint length+1 = 3; then one tagged field: tag 0, size 16, the topic id
    value = bytes.fromhex("0004" + OFFSET_4242 + "ffffffff" + "03" + "6869" + COMMIT_MS + "01" + "00" + "10" + topic_id)
    record = parse_record(KEY_V1, value)
    assert isinstance(record, OffsetCommit)
    assert (record.offset, record.leader_epoch, record.metadata, record.commit_timestamp_ms) == (
        4242, -1, "hi", COMMIT)


def test_a_tombstone_on_an_offset_key_deletes_that_offset() -> None:
    assert parse_record(KEY_V1, None) == OffsetDeleted(group="grp-a", topic="market.trades", partition=2)


def test_group_metadata_is_skipped_and_its_tombstone_deletes_the_group() -> None:
    classic = bytes.fromhex("0002" "0005" "6772702d61")
    assert parse_record(classic, b"\x00\x04anything") == GroupRecord(group="grp-a", key_version=2)
    assert parse_record(classic, None) == GroupDeleted(group="grp-a")
    consumer_protocol = bytes.fromhex("0003" "0005" "6772702d61")  # ConsumerGroupMetadataKey (KIP-848)
    assert parse_record(consumer_protocol, None) == GroupDeleted(group="grp-a")


def test_other_coordinator_records_are_skipped_by_type() -> None:
    assert parse_record(bytes.fromhex("0005" "0005" "6772702d61"), b"\x00\x00") == Skipped(key_version=5)


@pytest.mark.parametrize(("key", "value", "message"), [
    (KEY_V1, bytes.fromhex("0003" + OFFSET_4242 + "00000007"), "metadata needs 2 bytes"),
    (KEY_V1, bytes.fromhex("0003" + OFFSET_4242 + "00000007" + "0005" + "6869"), "metadata needs 5 bytes"),
    (KEY_V1, bytes.fromhex("0009" + OFFSET_4242), "unknown value version 9"),
    (KEY_V1[:-2], b"\x00\x03", "partition needs 4 bytes"),
    (b"", b"\x00\x03", "without a key"),
])
def test_malformed_records_say_which_field_is_short(key: bytes, value: bytes, message: str) -> None:
    with pytest.raises(OffsetsParseError, match=message):
        parse_record(key, value)
