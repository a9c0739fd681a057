"""Labels filled in where they are missing (`--fill-na ROUNDS`): pseudo-labels for NA cells, then training again.

After a run, its model predicts the training images. An NA cell becomes 1 (or 0) where its probability lies in
the widest upper (lower) tail of probabilities that is right FILL_PRECISION of the time on the validation
images' known labels, per attribute; the other NA cells stay NA (masked). The next round trains from the start
on the filled labels, and fills the same cells (the user's NA cells) again with its own model. Validation and
test labels are never filled: they stay the truth that calibrates and scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defect_tf.data.labels import NA, LabelTable, format_labels, known_mask, parse_labels
from defect_tf.io.files import write_text

# How often a filled-in label must be right on the validation images' known labels. At 0.98, NEU with 70% of its
# cells NA (small_cnn, 64 px, 3 seeds): filled labels 97.5-99% right, two rounds close more than half of the
# macro-F1 gap between masked and full labels; DeepPCB at 128 px, a model that ranks poorly: 90% right, no gain
# (docs/findings.md, "Labels filled in where they are missing").
FILL_PRECISION = 0.98
FILLED_LABELS_FILE = "labels_filled.txt"


def confident_limits(probabilities: np.ndarray, labels: np.ndarray,
                     precision: float = FILL_PRECISION) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute, the cuts `low` / `high`: probabilities at or below `low` (at or above `high`) are right
    `precision` of the time as 0 (as 1) among the known `labels` (1, 0 or NA): the widest such tails. An attribute
    whose known labels allow no such tail gets low -inf / high +inf (nothing filled in on that side)."""
    columns = probabilities.shape[1]
    low, high = np.full(columns, -np.inf), np.full(columns, np.inf)
    for column in range(columns):
        known = known_mask(labels[:, column])
        p, truth = probabilities[known, column], labels[known, column]
        for side, wanted in ((high, 1.0), (low, 0.0)):
            order = np.argsort(-p if wanted else p, kind="stable")
            right = np.cumsum(truth[order] == wanted) / np.arange(1, len(order) + 1)
            good = np.flatnonzero(right >= precision)
            if len(good):
                side[column] = p[order[good[-1]]]
    return low, high


def fill_confident(values: np.ndarray, probabilities: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """`values` with each NA cell set to 1 where its probability is at least `high`, 0 where at most `low`."""
    filled = values.copy()
    missing = ~known_mask(values)
    filled[missing & (probabilities >= high)] = 1.0
    filled[missing & (probabilities <= low)] = 0.0
    return filled


def fill_rows(values: np.ndarray, missing: np.ndarray, probabilities: np.ndarray, low: np.ndarray,
              high: np.ndarray) -> tuple[np.ndarray, dict]:
    """`values` with the cells in `missing` set again from scratch by `fill_confident` (the cells a previous round
    filled are decided anew), and the counts of what was filled."""
    filled = fill_confident(np.where(missing, NA, values), probabilities, low, high)
    counts = {"na_cells": int(missing.sum()), "filled_1": int((missing & (filled == 1)).sum()),
              "filled_0": int((missing & (filled == 0)).sum())}
    return filled, counts


def missing_cells(table: LabelTable, na_labels: str | Path | None) -> np.ndarray:
    """Which cells of `table` are the user's NA cells: `table`'s own NA cells, or, for a later round (`table`
    already filled), those of the label file `na_labels` the rounds started from, row by row by image."""
    if na_labels is None:
        return ~known_mask(table.values)
    original = parse_labels(na_labels)
    row_of = {image: row for row, image in enumerate(original.images)}
    return ~known_mask(original.values[[row_of[image] for image in table.images]])


def describe_filling(counts: dict, rounds_left: int, path: Path) -> str:
    """The line a filling round prints."""
    return (f"filling in labels: {counts['filled_1']:,} ones and {counts['filled_0']:,} zeros filled into the "
            f"{counts['na_cells']:,} NA cells of the training images (where the model is right {FILL_PRECISION:.0%} "
            f"of the time on the validation labels), saved to {path}; training again from the start on them "
            f"({rounds_left} filling round{'s' if rounds_left > 1 else ''} left, this one included)")


def write_filled(table: LabelTable, values: np.ndarray, path: Path) -> Path:
    """The filled label file (atomically: an interruption leaves the previous round's intact)."""
    return write_text(path, format_labels(LabelTable(table.attributes, table.images, values)))


def describe_rounds(scores: list[float]) -> str:
    """The line after the last round: the validation mean AP of the run without filling and of each round after it
    (this process's rounds: a resumed run knows only its own), and a warning where the rounds did worse."""
    shown = ", ".join("n/a" if np.isnan(score) else f"{score:.3f}" for score in scores)
    line = f"--fill-na: validation mean AP {shown} (" + ("the run before filling, then each round)" if len(scores) > 1
                                                          else "the last round)")
    if len(scores) > 1 and scores[-1] < scores[0]:
        line += ("; warning: below the run without --fill-na, so filling in did not help on this data (the model "
                 "it fills from may be too weak): train without it")
    return line
