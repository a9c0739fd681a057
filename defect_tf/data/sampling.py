"""Class-balanced sampling, an alternative to class weights: training batches draw every class equally often.

Each training image joins one group: its class (multi-class), or, with several attributes, the rarest
attribute it shows (its least frequent known positive in the training split), or the group of images that
show none. Batches then draw from each group with equal probability, repeating the images of small groups.
"""

from __future__ import annotations

import numpy as np

SAMPLERS = ("shuffle", "balanced")  # shuffle: every image once per epoch, in a new order each epoch
NO_POSITIVE = -1  # the group of images with no known positive attribute


def balance_groups(values: np.ndarray) -> np.ndarray:
    """Each row's group: the index of its rarest known positive attribute, or NO_POSITIVE if it has none."""
    positive = values == 1
    counts = positive.sum(axis=0)
    rarity = np.where(positive, counts[None, :], np.iinfo(np.int64).max)
    return np.where(positive.any(axis=1), np.argmin(rarity, axis=1), NO_POSITIVE)


def describe_groups(groups: np.ndarray, attributes: list[str]) -> str:
    """The log line: which groups batches draw from equally, and how many images each holds."""
    names = {NO_POSITIVE: "(none)", **dict(enumerate(attributes))}
    sizes = ", ".join(f"{names[int(g)]} {int((groups == g).sum())}" for g in np.unique(groups))
    return f"--sampler balanced: batches draw each of {len(np.unique(groups))} groups equally often ({sizes}); " \
           "class weights off"
