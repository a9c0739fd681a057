"""Checking a data set before training: every problem with the labels and images, reported at once.

Used by `train.py` before it trains and by `train.py --check`, which stops after the report.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from defect_tf.data.image_files import ImageHeader, find_images, inspect_file
from defect_tf.data.images import load_image, read_image
from defect_tf.data.labels import LabelTable, label_counts, leaves_folder
from defect_tf.data.pipeline import PARALLEL_CALLS, fixed_tuning
from defect_tf.errors import ImageError

INSPECTING_THREADS = 4  # headers read a few at a time (reading a file waits on the disk, not the CPU)


def inspect_images(paths: list[str]) -> tuple[dict[str, ImageHeader], dict[str, str]]:
    """Each file read through the guarded reader and its header checked (size, format, pixels, frames), a few at a
    time: (path -> header of those that pass, path -> reason of those that do not)."""
    def inspect(path: str) -> ImageHeader | str:
        try:
            return inspect_file(path)
        except ImageError as error:
            return error.reason or str(error)

    with ThreadPoolExecutor(max_workers=INSPECTING_THREADS) as pool:
        results = dict(zip(paths, pool.map(inspect, paths)))
    return ({path: result for path, result in results.items() if isinstance(result, ImageHeader)},
            {path: result for path, result in results.items() if isinstance(result, str)})


def undecodable_images(paths: list[str]) -> dict[str, str]:
    """Of files whose headers passed, those that fail to decode, with the reason; decoding runs in parallel in
    tf.data. Files that fail are dropped by `ignore_errors`; the few missing from the result are then read once
    more, one by one, to get their error messages."""
    if not paths:
        return {}
    dataset = tf.data.Dataset.from_tensor_slices((paths, np.arange(len(paths))))
    # reduce_max uses the pixels, so the decode cannot be optimised away (a static shape would let it be)
    dataset = dataset.map(lambda path, index: (tf.reduce_max(load_image(path, 8)), index),
                          num_parallel_calls=PARALLEL_CALLS)
    readable = {int(index) for _, index in fixed_tuning(dataset.ignore_errors()).as_numpy_iterator()}
    problems = {}
    for index in sorted(set(range(len(paths))) - readable):
        try:
            read_image(paths[index], 8)
            problems[paths[index]] = "cannot be decoded"
        except ImageError as error:
            problems[paths[index]] = error.reason or str(error).split(": ", 1)[-1]
    return problems


def unreadable_images(paths: list[str]) -> dict[str, str]:
    """Images that are missing, not regular files, too large, or cannot be decoded, with the reason."""
    return check_images(paths)[1]


def check_images(paths: list[str]) -> tuple[dict[str, ImageHeader], dict[str, str]]:
    """Every file's header checked, then every passing file decoded: (headers of the good ones, path -> reason of
    the bad ones)."""
    headers, problems = inspect_images(paths)
    problems.update(undecodable_images(list(headers)))
    return {path: header for path, header in headers.items() if path not in problems}, problems


def unlisted_images(data_dir: str | Path, listed: list[str]) -> list[str]:
    """Image files under `data_dir` that the label file does not mention (not an error; reported)."""
    root = Path(data_dir)
    listed_paths = {os.path.normpath(root / name) for name in listed}
    return [str(path.relative_to(root)) for path in find_images(root) if os.path.normpath(path) not in listed_paths]


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
    digests: dict[str, str] = field(default_factory=dict)  # path -> content digest, of every readable image

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
    headers, bad = check_images(paths)
    return DataReport(bad_images=bad, unlisted=unlisted_images(data_dir, table.images),
                      warnings=[*table.notes, *path_warnings(table.images), *attribute_warnings(table)],
                      digests={path: header.digest for path, header in headers.items()})
