"""A partition's state snapshot round-trips through the real changelog; one written by older code is ignored."""
from __future__ import annotations

import logging
import pickle
import sys
import types

import pytest

from agents.changelog import StateChangelog
from agents.partitions import PartitionStates
from liqbot.config import Settings


def changelog(settings: Settings, name: str) -> StateChangelog:
    made = StateChangelog(settings.kafka, settings.kafka.topic_prefix + name)
    made.ensure()
    return made


def empty() -> list[int]:
    return []


def test_a_snapshot_is_restored_with_its_offsets(settings: Settings) -> None:
    log = changelog(settings, "state.roundtrip")
    states: PartitionStates[list[int]] = PartitionStates(log, empty, version="v1", every_s=60)
    slot = states.slot(1)
    slot.state.extend([3, 1, 4])
    states.done(slot, "market.trade", 41)
    states.save([1])

    restored = PartitionStates(log, empty, version="v1", every_s=60).slot(1)
    assert restored.state == [3, 1, 4]
    assert restored.applied == {"market.trade": 41}


def test_a_snapshot_of_a_class_this_code_no_longer_has_is_ignored_with_a_warning(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # an older engine's state: its module existed when it was pickled and is gone now
    gone = types.ModuleType("liqbot_gone_engine")
    exec("class Engine:\n    pass\n", gone.__dict__)
    sys.modules["liqbot_gone_engine"] = gone
    try:
        blob = pickle.dumps(("features:1:abc", gone.Engine(), {"market.trade": 7}, {}))
    finally:
        del sys.modules["liqbot_gone_engine"]
    log = changelog(settings, "state.unreadable")
    log.write(0, b"partition-0", blob, lambda: None)
    log.flush()

    with caplog.at_level(logging.WARNING, logger="agents.partitions"):
        slot = PartitionStates(log, empty, version="features:2:abc", every_s=60).slot(0)
    assert slot.state == [] and slot.applied == {}  # starts empty, from the committed offsets
    [warning] = [r.getMessage() for r in caplog.records if r.name == "agents.partitions"]
    assert warning.startswith("partition 0: snapshot of state version unreadable (No module named "
                              "'liqbot_gone_engine') ignored (this code is features:2:abc); starting empty")


def test_a_snapshot_of_another_version_is_ignored(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    log = changelog(settings, "state.version")
    old: PartitionStates[list[int]] = PartitionStates(log, empty, version="features:1:abc", every_s=60)
    old.slot(2).state.append(9)
    old.done(old.slot(2), "market.trade", 5)
    old.save([2])

    with caplog.at_level(logging.WARNING, logger="agents.partitions"):
        slot = PartitionStates(log, empty, version="features:2:abc", every_s=60).slot(2)
    assert slot.state == []
    assert any("version features:1:abc ignored" in r.getMessage() for r in caplog.records)
