"""A sweep-wide index of the seeds' distillation targets in Ray's object store (torch-free: it runs as its own actor).

A seed's noise set and teacher log-probabilities cost about half a second to build and are the same
for every arm of the seed. The first trial of a seed to build them puts them in the object store and
records the reference here; a trial of that seed on any other worker then maps them from shared
memory instead of rebuilding them. The objects stay owned by the worker that built them; one that
can no longer be read (its node went away) is built again by the reader (see worker.py), so the
store only ever saves time and never changes a number.
"""

from __future__ import annotations

from collections import OrderedDict

import ray


@ray.remote(num_cpus=0)
class TargetStore:
    """Object references by targets key, newest last; the oldest are dropped beyond `budget_bytes` in all."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict[tuple, tuple[list[ray.ObjectRef], int]] = OrderedDict()

    def get(self, key: tuple) -> list[ray.ObjectRef]:
        """[reference] when the key's targets are stored, else []: a list keeps Ray from resolving it."""
        return self.entries[key][0] if key in self.entries else []

    def put(self, key: tuple, boxed: list[ray.ObjectRef], nbytes: int) -> None:
        self.entries[key] = (boxed, nbytes)
        self.entries.move_to_end(key)
        while len(self.entries) > 1 and sum(size for _, size in self.entries.values()) > self.budget_bytes:
            self.entries.popitem(last=False)
