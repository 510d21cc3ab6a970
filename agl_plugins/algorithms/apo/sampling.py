"""The batches APO draws from a dataset, reproducibly from its random generator."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any


def batches(items: Sequence[Any], size: int, rng: random.Random) -> Iterator[list[Any]]:
    """Endless batches of ``size`` items; each pass over ``items`` is a new shuffle, and a batch
    that reaches the end of a pass continues into the next (no item twice in one batch, unless the
    batch is larger than ``items``, which gives all of them each time)."""
    if size >= len(items):
        while True:
            yield list(items)
    order: list[int] = []
    while True:
        batch: list[Any] = []
        taken: set[int] = set()
        while len(batch) < size:
            if not order:
                order = list(range(len(items)))
                rng.shuffle(order)
            index = order.pop()
            if index in taken:  # a new pass began inside this batch: keep the repeat for later
                order.insert(0, index)
                continue
            taken.add(index)
            batch.append(items[index])
        yield batch
