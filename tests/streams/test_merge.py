"""The event-time merge of an agent's inputs (hand-made synthetic timestamps: the rules, one at a time)."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.merge import EventTimeMerge, ordered


def _merge(*sources: str) -> EventTimeMerge[str]:
    merge: EventTimeMerge[str] = EventTimeMerge()
    for source in sources:
        merge.add_source(source)
    return merge


def test_waits_for_a_source_that_may_still_send_something_earlier() -> None:
    merge = _merge("trades", "books")
    merge.push("trades", 10, 0, "t10")
    assert merge.release(lambda s: False) == []  # books sent nothing yet and is not read to its end
    merge.push("books", 5, 0, "b5")
    assert merge.release(lambda s: False) == ["b5"]  # t10 still waits: books may send something before 10
    merge.push("books", 12, 1, "b12")
    assert merge.release(lambda s: False) == ["t10"]
    assert merge.release(lambda s: s == "trades") == ["b12"]  # trades is read to its end: nothing earlier comes


def test_ties_go_by_source_rank_then_offset_and_idle_sources_never_block() -> None:
    merge = _merge("liquidations", "trades", "books")
    merge.push("books", 7, 3, "b7")
    merge.push("trades", 7, 9, "t7")
    merge.push("liquidations", 7, 1, "l7")
    assert merge.release(lambda s: True) == ["l7", "t7", "b7"]
    assert len(merge) == 0


def test_a_source_keeps_its_own_order_even_when_its_times_go_backwards() -> None:
    merge = _merge("trades", "books")
    merge.push("trades", 10, 0, "t10")
    merge.push("trades", 8, 1, "t8")  # earlier in time, later in the partition: stays behind t10
    merge.push("books", 9, 0, "b9")
    assert merge.release(lambda s: True) == ["b9", "t10", "t8"]
    assert merge.newest_ns == {"trades": 10, "books": 9}


def test_idle_is_asked_only_for_sources_that_lag() -> None:
    merge = _merge("a", "b", "c")
    merge.push("a", 5, 0, "a5")
    merge.push("b", 6, 0, "b6")
    asked: list[str] = []

    def idle(source: object) -> bool:
        asked.append(str(source))
        return True

    assert merge.release(idle) == ["a5", "b6"]
    assert asked == ["c", "a"]  # c for a5; for b6 also a, once: b itself is not behind


class _Rule:
    """The rule itself, as a reference: the earliest item goes while every source has sent something as late, or
    is idle; an item earlier than its source's newest is held at that newest; ties go by rank, then offset."""

    def __init__(self, *sources: str) -> None:
        self.rank = {s: i for i, s in enumerate(sources)}
        self.newest = dict.fromkeys(sources, -1)
        self.held: list[tuple[int, int, int, str]] = []

    def push(self, source: str, ts_ns: int, offset: int, item: str) -> None:
        self.newest[source] = max(self.newest[source], ts_ns)
        heapq.heappush(self.held, (self.newest[source], self.rank[source], offset, item))

    def release(self, idle: set[str]) -> list[str]:
        out = []
        while self.held:
            ts_ns = self.held[0][0]
            if any(newest < ts_ns and s not in idle for s, newest in self.newest.items()):
                break
            out.append(heapq.heappop(self.held)[3])
        return out


@settings(max_examples=300)
@given(steps=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20), st.sets(st.sampled_from("abc"))),
                      max_size=40))
def test_release_is_the_rule_whatever_the_order_and_idleness(steps: list[tuple[str, int, set[str]]]) -> None:
    """SYNTHETIC pushes: after every one, what the merge lets out is what the rule says, in the same order."""
    merge, reference = _merge("a", "b", "c"), _Rule("a", "b", "c")
    for offset, (source, ts_ns, idle) in enumerate(steps):
        for m in (merge, reference):
            m.push(source, ts_ns, offset, f"{source}{ts_ns}@{offset}")
        assert merge.release(idle.__contains__) == reference.release(idle)


@settings(max_examples=300)
@given(pushes=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20)), max_size=60))
def test_the_replay_order_of_complete_sources_is_the_merge_read_to_its_end(pushes: list[tuple[str, int]]) -> None:
    """SYNTHETIC sources: `ordered` (the history replay) gives what the agents' merge releases once every source is
    read to its end, ties and times that go backwards included."""
    merge = _merge("a", "b", "c")
    streams: dict[str, list[tuple[int, int, str]]] = {s: [] for s in "abc"}
    for offset, (source, ts_ns) in enumerate(pushes):
        merge.push(source, ts_ns, offset, f"{source}{ts_ns}@{offset}")
        streams[source].append((ts_ns, offset, f"{source}{ts_ns}@{offset}"))
    merged = list(ordered([streams[s] for s in "abc"]))
    assert [item for _, _, item in merged] == merge.release(lambda s: True)
    assert [(rank, ts_ns) for rank, ts_ns, item in merged] == [("abc".index(item[0]), int(item[1:].split("@")[0]))
                                                               for _, _, item in merged]



def _run(merge: EventTimeMerge[str], pushes: list[tuple[str, int, int]], idle_at_end: set[str]) -> list[str]:
    out: list[str] = []
    for source, ts_ns, offset in pushes:
        merge.push(source, ts_ns, offset, f"{source}{offset}")
        out += merge.release(lambda s: False)
    return out + merge.release(lambda s: s in idle_at_end)


def test_a_restart_from_resume_points_releases_as_the_uninterrupted_merge() -> None:
    """A record earlier than its source's newest waits behind it, also when that newest was released before a
    snapshot: a restart resumes each source's newest from the snapshot, or it would order the re-read differently."""
    sources = ("a", "b", "c", "d")
    original = _merge(*sources)
    released = _run(original, [("a", 10, 0), ("b", 12, 0), ("c", 6, 0), ("d", 11, 0)], {"a", "b", "c"})
    assert released == ["c0", "a0", "d0"]  # b0 (12) is held: d, not read to its end, may still send 11-12
    points = original.resume_points()  # the snapshot's
    assert points == {"a": 10, "b": 12, "c": 6, "d": 11}
    after = [("a", 5, 1), ("c", 8, 1), ("d", 13, 1)]  # a1 is earlier than a0: it waits behind it, after c1
    uninterrupted = released + _run(original, after, set(sources))
    assert uninterrupted == ["c0", "a0", "d0", "c1", "a1", "b0", "d1"]
    reread = [("b", 12, 0), *after]  # after a restart: the held record again, then what came after the snapshot
    restarted = _merge(*sources)
    restarted.resume(points)
    assert released + _run(restarted, reread, set(sources)) == uninterrupted
    fresh = _merge(*sources)  # without the points, a1 goes before c1: a vector folded in another order
    assert released + _run(fresh, reread, set(sources)) == ["c0", "a0", "d0", "a1", "c1", "b0", "d1"]
