"""Checking a data set before training: every problem with the labels and images, reported at once.

Used by `train.py` before it trains and by `train.py --check`, which stops after the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from defect_tf.data.images import IMAGE_SUFFIXES, load_image, oversized, read_image
from defect_tf.data.labels import LabelTable, label_counts, leaves_folder
from defect_tf.data.pipeline import PARALLEL_CALLS, fixed_tuning
from defect_tf.errors import ImageError


def unreadable_images(paths: list[str]) -> dict[str, str]:
    """Images that are missing or cannot be decoded, with the reason; decoding runs in parallel in tf.data.

    Images too large to decode safely are refused from their header alone. Files that fail to decode
    are dropped by `ignore_errors`; the few missing from the result are then read once more, one
    by one, to get their error messages.
    """
    problems = {path: reason for path in paths if (reason := oversized(path))}
    candidates = [path for path in paths if path not in problems]
    if not candidates:
        return problems
    dataset = tf.data.Dataset.from_tensor_slices((candidates, np.arange(len(candidates))))
    # reduce_max uses the pixels, so the decode cannot be optimised away (a static shape would let it be)
    dataset = dataset.map(lambda path, index: (tf.reduce_max(load_image(path, 8)), index),
                          num_parallel_calls=PARALLEL_CALLS)
    readable = {int(index) for _, index in fixed_tuning(dataset.ignore_errors()).as_numpy_iterator()}
    for index in sorted(set(range(len(candidates))) - readable):
        try:
            read_image(candidates[index], 8)
            problems[candidates[index]] = "cannot be decoded"
        except ImageError as error:
            problems[candidates[index]] = str(error).split(": ", 1)[-1]
    return problems


def unlisted_images(data_dir: str | Path, listed: list[str]) -> list[str]:
    """Image files under `data_dir` that the label file does not mention (not an error; reported)."""
    root = Path(data_dir)
    listed_paths = {(root / name).resolve() for name in listed}
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and path.resolve() not in listed_paths)


def attribute_warnings(table: LabelTable) -> list[str]:
    """Attributes that can't be learned (never positive, never negative) or never known at all."""
    counts = label_counts(table.values)
    warnings = []
    for j, name in enumerate(table.attributes):
        if counts["positive"][j] + counts["negative"][j] == 0:
            warnings.append(f"attribute {name!r} is NA for every image: it cannot be learned or scored")
        elif counts["positive"][j] == 0:
            warnings.append(f"attribute {name!r} is never positive: it cannot be learned or calibrated")
        elif counts["negative"][j] == 0:
            warnings.append(f"attribute {name!r} is never negative: it cannot be learned or calibrated")
    return warnings


@dataclass
class DataReport:
    """What a check of labels plus images found."""

    bad_images: dict[str, str] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe_warnings(self) -> str:
        """Warnings and notes: things training can live with."""
        lines = [f"warning: {warning}" for warning in self.warnings]
        if self.unlisted:
            shown = ", ".join(self.unlisted[:5]) + (" ..." if len(self.unlisted) > 5 else "")
            lines.append(f"note: {len(self.unlisted)} image file(s) in the folder are not in the label file "
                         f"(not used): {shown}")
        return "\n".join(lines)

    def describe_bad_images(self) -> str:
        """Every listed image that is missing or unreadable, one per line."""
        lines = [f"{len(self.bad_images)} listed image(s) are missing or unreadable:"]
        return "\n".join(lines + [f"  {path}: {reason}" for path, reason in self.bad_images.items()])


def path_warnings(images: list[str]) -> list[str]:
    """Image paths that leave the data folder (allowed, but rarely meant: the folder no longer holds the data)."""
    outside = [image for image in images if leaves_folder(image)]
    if not outside:
        return []
    return [f"{len(outside)} image path(s) point outside the data folder (absolute or through ..), e.g. "
            f"{', '.join(outside[:3])}"]


def check_data(data_dir: str | Path, table: LabelTable) -> DataReport:
    """Check every listed image and the label matrix; nothing is trained or changed."""
    if not Path(data_dir).is_dir():
        raise ImageError(f"{data_dir}: data folder not found" if not Path(data_dir).exists()
                         else f"{data_dir}: not a folder; --data takes the folder the label file's paths are relative to")
    paths = [str(Path(data_dir) / name) for name in table.images]
    return DataReport(bad_images=unreadable_images(paths), unlisted=unlisted_images(data_dir, table.images),
                      warnings=[*table.notes, *path_warnings(table.images), *attribute_warnings(table)])
