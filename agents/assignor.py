"""Faust's partition assignor with co-subscribed topics grouped by a canonical key.

Faust groups topics that the same members subscribe into one co-partitioned group, keyed by `tuple(set of
members)`; a set's order is arbitrary, so with two workers the market topics fell into several "groups" that
were assigned independently, and a worker owned partition 1 of the trades but not of the book tickers. Sorting
the members makes every topic with the same subscribers one group, so partition p of every topic goes to one
worker, which the agents' joins need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from faust.assignor import PartitionAssignor

__all__ = ["CopartitionedPartitionAssignor"]


class CopartitionedPartitionAssignor(PartitionAssignor):
    @classmethod
    def _group_co_subscribed(cls, topics: set[str], subscriptions: Mapping[str, Sequence[str]]) -> Iterable[set[str]]:
        members_of: defaultdict[str, set[str]] = defaultdict(set)
        for member, subscribed in subscriptions.items():
            for topic in subscribed:
                members_of[topic].add(member)
        groups: defaultdict[tuple[str, ...], set[str]] = defaultdict(set)
        for topic in topics:
            groups[tuple(sorted(members_of[topic]))].add(topic)
        return groups.values()
