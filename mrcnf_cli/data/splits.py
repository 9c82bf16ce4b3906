"""Split names and the deterministic split of sets that come without one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from mrcnf_cli.errors import InputError

SPLITS = ("train", "test", "all")
SPLIT_ALIASES = {"val": "test"}

# In a set without its own split, the 10th, 20th, 30th, ... item in sorted order is a test item.
TEST_EVERY = 10

Item = TypeVar("Item")


def normalize_split(split: str) -> str:
    """Return the canonical split name: "train", "test" or "all" ("val" is "test")."""
    canonical = SPLIT_ALIASES.get(split, split)
    if canonical not in SPLITS:
        choices = ", ".join([*SPLITS, *SPLIT_ALIASES])
        raise InputError(f"unknown split {split!r}; choose one of: {choices}")
    return canonical


def is_test_index(index: int | np.ndarray) -> bool | np.ndarray:
    """Return whether item `index` (0-based, sorted order; an int or an array) belongs to the test split."""
    return index % TEST_EVERY == TEST_EVERY - 1


def select_split(items: Sequence[Item], split: str) -> list[Item]:
    """Take the items of `split` from a sorted sequence: every 10th item is a test item."""
    if split == "all":
        return list(items)

    want_test = split == "test"
    return [item for index, item in enumerate(items) if is_test_index(index) == want_test]
