"""Deterministic train / validation / test split that spreads every attribute's positives over all parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defect_tf.data.labels import normalise_image_path, read_label_text
from defect_tf.errors import DefectTFError
from defect_tf.io.files import write_text

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # of the images, in the order of SPLITS
# Fewer validation images than this steer a pretrained run worse than training on them (docs/findings.md)
MIN_VALIDATION_IMAGES = 20
# What a pretrained run does with fewer: train on them too, hold them out, or (auto) train on them with the linear
# probe, the recipe they measured better with (train/config.py)
SMALL_VALIDATION = ("auto", "train", "hold-out")


def stratified_split(values: np.ndarray, fractions=SPLIT_FRACTIONS, seed: int = 0) -> np.ndarray:
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


def train_on_small_validation(split: np.ndarray) -> np.ndarray:
    """`split` with its validation images moved to training when there are fewer than MIN_VALIDATION_IMAGES."""
    split = np.asarray(split, dtype=object).copy()
    validation = split == "val"
    if 0 < validation.sum() < MIN_VALIDATION_IMAGES:
        split[validation] = "train"
    return split


def write_split(path: str | Path, images: list[str], split_names) -> None:
    """Save the split as `image split` rows, so evaluation reuses exactly the same test images."""
    lines = ["image split", *(f"{image} {name}" for image, name in zip(images, split_names))]
    write_text(path, "\n".join(lines) + "\n")


def read_split(path: str | Path) -> dict[str, str]:
    """Read a split file (`image split` rows, as `write_split` writes): image path -> split name.

    Image paths are normalised as the label file's are; every malformed row is reported at once.
    """
    lines = read_label_text(path, "split file").splitlines()
    saved, problems = {}, []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.strip().rsplit(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in SPLITS:
            problems.append(f"{path}:{number}: expected `image train|val|test`, found {line.strip()[:80]!r}")
            continue
        image = normalise_image_path(fields[0])
        if saved.get(image, fields[1]) != fields[1]:
            problems.append(f"{path}:{number}: {image} is listed again in another split ({saved[image]})")
        saved[image] = fields[1]
    if problems:
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DefectTFError("\n".join(problems[:10]) + more)
    if not saved:
        raise DefectTFError(f"{path}: no `image split` rows after the header")
    return saved


def split_from_file(path: str | Path, images: list[str], values: np.ndarray, fractions=SPLIT_FRACTIONS,
                    seed: int = 0) -> np.ndarray:
    """Each image's part as a split file says (e.g. a data set's official split, or one shared by several runs).
    See `split_from_parts`."""
    return split_from_parts(read_split(path), images, values, fractions, seed, f"the split file {path}")


def split_from_parts(saved: dict[str, str], images: list[str], values: np.ndarray, fractions=SPLIT_FRACTIONS,
                     seed: int = 0, where: str = "the split") -> np.ndarray:
    """Each image's part as `saved` (image -> train / val / test) says; every image must be in it.

    Without `val` images (an official train / test split), validation images are carved out of `train`,
    stratified, in the ratio `fractions` gives val to train.
    """
    missing = [image for image in images if image not in saved]
    if missing:
        raise DefectTFError(f"{where} leaves out {len(missing)} labelled image(s), e.g. "
                            f"{', '.join(missing[:5])}")
    split = np.asarray([saved[image] for image in images], dtype=object)
    if not np.any(split == "val"):
        train_rows = np.flatnonzero(split == "train")
        val_share = fractions[1] / (fractions[0] + fractions[1])
        carved = stratified_split(values[train_rows], (1.0 - val_share, val_share, 0.0), seed)
        split[train_rows[carved == "val"]] = "val"
    return split.astype(str)
