"""Where the labels come from, all turned into one LabelTable: a label file (`image attr1 attr2 ...` rows of
1 / 0 / NA, spaces or commas), a CSV with a path column and a class-name column, or one folder per class
(optionally under `train/` `val/` `test/`, which then is the split)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.data.image_files import SUPPORTED, find_images
from defect_tf.data.labels import (
    LabelTable,
    label_error,
    normalise_image_path,
    read_label_text,
    read_labels,
    unlistable,
)
from defect_tf.data.splits import SPLITS
from defect_tf.errors import LabelError

PATH_COLUMNS = ("image", "path", "file", "filename", "filepath", "image_path", "file_name")
CLASS_COLUMNS = ("label", "class", "category", "class_name")
# With two classes and --task binary, one is the defect to detect: the one whose name says "defect" (a word of
# DEFECT_WORDS) or, failing that, the one whose name does not say "intact" (INTACT_WORDS, or a defect word negated,
# as in no_defect). Names that say the same of both (good / ok) or nothing (scratch / dent) need --positive.
INTACT_WORDS = frozenset({"good", "ok", "okay", "normal", "intact", "pass", "passed", "clean", "negative", "undamaged",
                          "background", "nodefect", "flawless", "healthy", "fine", "accept", "accepted"})
DEFECT_WORDS = frozenset({"defect", "defects", "defective", "bad", "ng", "nok", "fail", "failed", "reject", "rejected",
                          "damaged", "damage", "anomaly", "anomalous", "abnormal", "faulty", "fault", "broken",
                          "positive", "scrap"})
NEGATIONS = frozenset({"no", "non", "not", "without", "free"})  # no_defect, non-defective, defect_free


@dataclass(frozen=True)
class LabelSource:
    """Labels as read, before any check: the table, what could not be read, and a split the layout fixes."""

    table: LabelTable
    problems: list[str]
    layout: str  # "label file", "class CSV" or "class folders"; said in the log
    split: dict[str, str] | None = None  # image -> train / val / test, from the folders
    one_class_per_image: bool = False  # the layout can only say one class per image (its default task: multi-class)


def read_source(data: str | Path, labels: str | Path | None) -> LabelSource:
    """The labels of `data`: from `labels` (a label file or a class CSV), or, without one, from the class folders."""
    if labels:
        return _read_label_file(Path(labels))
    return read_class_folders(Path(data))


def load_source(data: str | Path, labels: str | Path | None) -> LabelSource:
    """`read_source`, stopping with every problem at once (as `parse_labels` does)."""
    source = read_source(data, labels)
    if source.problems:
        raise label_error(source.problems)
    return source


def says_intact(name: str) -> bool | None:
    """What a class name says of the parts in it: True (intact), False (defective) or None (neither, or both)."""
    words = set(re.split(r"[^a-z0-9]+", name.lower())) - {""}
    defect, intact = bool(words & DEFECT_WORDS), bool(words & INTACT_WORDS)
    if defect and words & NEGATIONS:
        defect, intact = False, True
    return None if defect == intact else intact


def binary_from_classes(source: LabelSource, positive: str | None = None) -> tuple[LabelSource, list[str]]:
    """Two classes as one attribute to detect: 1 for the defect class, 0 for the other (`positive`, or the one the
    names tell, see `says_intact`); the layout then names both. Problems when the names leave it open."""
    table = source.table
    if len(table.attributes) != 2:
        return source, []
    if positive is not None:
        if positive not in table.attributes:
            return source, [f"--positive {positive}: not one of the two classes ({', '.join(table.attributes)})"]
        chosen = table.attributes.index(positive)
    else:
        said = [says_intact(name) for name in table.attributes]
        chosen = next((j for j in (0, 1) if said[j] is False and said[1 - j] is not False), None)
        if chosen is None:
            chosen = next((j for j in (0, 1) if said[1 - j] is True and said[j] is not True), None)
        if chosen is None:
            first, second = table.attributes
            return source, [f"--task binary: the class names {first!r} and {second!r} do not say which one is the "
                            f"defect to detect; name it with --positive {first} (or --positive {second})"]
    values = np.where((table.values < 0).all(axis=1, keepdims=True), -1.0, table.values[:, [chosen]])
    layout = (f"{source.layout}; the defect class is {table.attributes[chosen]!r}, {table.attributes[1 - chosen]!r} "
              "is intact" + ("" if positive else " (--positive NAME to choose)"))
    return LabelSource(LabelTable([table.attributes[chosen]], table.images, values.astype(np.float32), table.notes),
                       source.problems, layout, source.split, source.one_class_per_image), []


def _read_label_file(path: Path) -> LabelSource:
    text = read_label_text(path)
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    header = [field.strip().lower() for field in first_line.split(",")]
    if len(header) == 2 and header[0] in PATH_COLUMNS and header[1] in CLASS_COLUMNS:
        return _read_class_csv(path, text)
    table, problems = read_labels(path, text)
    return LabelSource(table, problems, "label file")


def _read_class_csv(path: Path, text: str) -> LabelSource:
    """`path,class` rows (class names, not 0/1): one class per image; an empty class is unknown (NA)."""
    rows = list(csv.reader(io.StringIO(text)))
    rows = [(number, row) for number, row in enumerate(rows, 1) if any(cell.strip() for cell in row)]
    problems, pairs = [], []
    for number, row in rows[1:]:
        if len(row) != 2 or not row[0].strip():
            problems.append(f"{path}:{number}: expected `image,class`, found {','.join(row)[:80]!r}")
            continue
        pairs.append((normalise_image_path(row[0].strip()), row[1].strip()))
    classes = sorted({name for _, name in pairs if name and name.lower() not in ("na", "n/a", "nan")})
    table, more = _one_hot_table(classes, pairs, path)
    return LabelSource(table, problems + more, "class CSV", one_class_per_image=True)


def _one_hot_table(classes: list[str], pairs: list[tuple[str, str]], where: Path) -> tuple[LabelTable, list[str]]:
    """image -> class pairs as a table: one-hot rows, all NA for an unknown (empty or NA) class; an image named
    twice with two classes is a problem, twice with the same class a note."""
    column = {name: j for j, name in enumerate(classes)}
    first: dict[str, str] = {}
    images, rows, notes, problems = [], [], [], unlistable([image for image, _ in pairs], str(where))
    for image, name in pairs:
        if image in first:
            (notes if first[image] == name else problems).append(
                f"{where}: {image} is listed again" + (" with the same class; using it once" if first[image] == name
                                                       else f" with another class ({first[image]}, {name})"))
            continue
        first[image] = name
        row = np.full(len(classes), -1.0 if name not in column else 0.0, dtype=np.float32)
        if name in column:
            row[column[name]] = 1.0
        images.append(image)
        rows.append(row)
    values = np.asarray(rows, dtype=np.float32).reshape(len(images), len(classes))
    return LabelTable(classes, images, values, tuple(notes)), problems


def _class_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def _describe_empty(folder: Path, data: Path) -> str:
    """Why a class folder counts for nothing: no files, or only files of types the tool does not read."""
    others = sorted(path.name for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))
    what = "is empty" if not others else (f"holds no image the tool reads ({SUPPORTED}), only {len(others)} other "
                                          f"file(s), e.g. {', '.join(others[:3])}")
    return f"{folder.relative_to(data).as_posix()}/ {what}"


def read_class_folders(data: Path) -> LabelSource:
    """One sub-folder per class (`data/<class>/...`), or `data/train|val|test/<class>/...` with the split fixed.

    Images in sub-folders of a class folder (symbolic links too) belong to that class. A class folder without
    images is a problem (in a train/val/test part: a note, as a small part may lack a class).
    """
    if not data.is_dir():
        raise LabelError(f"--data {data}: folder not found" if not data.exists() else f"--data {data}: not a folder")
    folders = _class_folders(data)
    parts = [folder for folder in folders if folder.name in SPLITS]
    pairs, split, problems, notes = [], None, [], []
    if parts and "train" in {part.name for part in parts}:
        others = [folder.name for folder in folders if folder.name not in SPLITS]
        if others:
            problems.append(f"{data}: next to train/ val/ test/ there are other folders ({', '.join(others)}); "
                            "put every class folder inside the parts")
        split = {}
        for part in parts:
            for class_folder in _class_folders(part):
                images = find_images(class_folder)
                if not images:
                    notes.append(_describe_empty(class_folder, data))
                for image in images:
                    name = image.relative_to(data).as_posix()
                    pairs.append((name, class_folder.name))
                    split[name] = part.name
        layout_hint = "train/<class>/"
    else:
        for class_folder in folders:
            images = find_images(class_folder)
            if not images:
                problems.append(f"class folder {_describe_empty(class_folder, data)}: add its images or remove it")
            pairs += [(image.relative_to(data).as_posix(), class_folder.name) for image in images]
        layout_hint = "<class>/"
    classes = sorted({name for _, name in pairs})
    if len(classes) < 2 and not problems:
        problems.append(f"--data {data} without --labels: expected one sub-folder of images per class "
                        f"({layout_hint}...), found {len(classes)} class folder(s) with images"
                        + ("" if classes else "; or give a label file with --labels FILE"))
    table, more = _one_hot_table(classes, pairs, data)
    table = LabelTable(table.attributes, table.images, table.values, (*table.notes, *notes))
    return LabelSource(table, problems + more, "class folders", split, one_class_per_image=True)
