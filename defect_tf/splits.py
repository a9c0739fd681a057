"""Deterministic train / validation / test split that spreads every attribute's positives over all parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defect_tf.errors import DefectTFError

SPLITS = ("train", "val", "test")


def stratified_split(values: np.ndarray, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> np.ndarray:
    """Assign each row to train / val / test; returns an array of split names.

    Iterative stratification (Sechidis et al., 2011): images are placed rarest-attribute first, each
    into the part that still lacks that attribute's positives most, so a rare defect is not left out
    of validation or test. A part that has none of an attribute's positives yet always goes first.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    positive = values == 1
    positives_per_attribute = positive.sum(axis=0)
    wanted_total = fractions * len(values)
    wanted_positive = fractions[:, None] * positives_per_attribute[None, :]
    have_total = np.zeros(3)
    have_positive = np.zeros((3, values.shape[1]))

    rarity = np.where(positive, positives_per_attribute, np.iinfo(np.int64).max).min(axis=1)
    order = rng.permutation(len(values))
    order = order[np.argsort(rarity[order], kind="stable")]
    assignment = np.empty(len(values), dtype=int)
    for row in order:
        attributes = np.flatnonzero(positive[row])
        total_deficit = wanted_total - have_total
        if attributes.size:
            rarest = attributes[np.argmin(positives_per_attribute[attributes])]
            lacking = (have_positive[:, rarest] == 0) & (fractions > 0)
            key = np.lexsort((total_deficit, wanted_positive[:, rarest] - have_positive[:, rarest], lacking))
        else:
            key = np.argsort(total_deficit, kind="stable")
        part = key[-1]
        assignment[row] = part
        have_total[part] += 1
        have_positive[part] += positive[row]
    return np.asarray(SPLITS)[assignment]


def write_split(path: str | Path, images: list[str], split_names) -> None:
    """Save the split as `image split` rows, so evaluation reuses exactly the same test images."""
    lines = ["image split", *(f"{image} {name}" for image, name in zip(images, split_names))]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_split(path: str | Path) -> dict[str, str]:
    """Read a split file (`image split` rows, as `write_split` writes): image path -> split name."""
    try:
        rows = Path(path).read_text(encoding="utf-8-sig").splitlines()[1:]
    except OSError as error:
        raise DefectTFError(f"{path}: cannot read the split file ({error.strerror})") from None
    return dict(row.strip().rsplit(maxsplit=1) for row in rows if row.strip())


def split_from_file(path: str | Path, images: list[str], values: np.ndarray, fractions=(0.7, 0.15, 0.15),
                    seed: int = 0) -> np.ndarray:
    """Each image's part as a split file says (e.g. a data set's official split, or one shared by several runs).

    Every image must be listed. A file with no `val` rows (an official train / test split) gets its
    validation images carved out of `train`, stratified, in the ratio `fractions` gives val to train.
    """
    saved = read_split(path)
    unknown = sorted({name for name in saved.values() if name not in SPLITS})
    if unknown:
        raise DefectTFError(f"{path}: split names must be train, val or test; found {', '.join(unknown)}")
    missing = [image for image in images if image not in saved]
    if missing:
        raise DefectTFError(f"{path}: {len(missing)} labelled images are not in the split file, e.g. "
                            f"{', '.join(missing[:5])}")
    split = np.asarray([saved[image] for image in images], dtype=object)
    if not np.any(split == "val"):
        train_rows = np.flatnonzero(split == "train")
        val_share = fractions[1] / (fractions[0] + fractions[1])
        carved = stratified_split(values[train_rows], (1.0 - val_share, val_share, 0.0), seed)
        split[train_rows[carved == "val"]] = "val"
    return split.astype(str)
