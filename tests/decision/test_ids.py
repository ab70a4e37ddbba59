"""The bounded memory of recent ids that makes redeliveries change nothing (ids here are SYNTHETIC strings)."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.ids import RecentIds


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=2000), st.integers(1, 64))
def test_it_remembers_exactly_the_newest_distinct_ids_up_to_its_capacity(keys: list[int], capacity: int) -> None:
    ids, newest = RecentIds(capacity), list[str]()
    for key in map(str, keys):
        fresh = key not in newest
        assert ids.remember(key) is fresh
        if fresh:
            newest = [*newest, key][-capacity:]
        assert all(k in ids for k in newest) and len(ids.seen) == len(newest)
        assert len(ids.order) <= 2 * capacity  # forgotten digests are dropped in bulk, not kept
    restored = pickle.loads(pickle.dumps(ids))
    assert restored == ids and all(k in restored for k in newest)
    assert restored.remember("new") == ids.remember("new") and restored == ids


def test_ids_differ_when_their_newest_ids_do() -> None:
    a, b = RecentIds(2), RecentIds(2)
    for key in ("x", "y", "z"):
        a.remember(key)
    for key in ("w", "y", "z"):
        b.remember(key)
    assert a == b  # x and w are both forgotten
    b.remember("v")
    assert a != b and "x" not in a and "y" in a
