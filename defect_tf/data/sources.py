"""Where the labels come from, all turned into one LabelTable: a label file (`image attr1 attr2 ...` rows of
1 / 0 / NA, spaces or commas), a CSV with a path column and a class-name column, or one folder per class
(optionally under `train/` `val/` `test/`, which then is the split)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.data.images import IMAGE_SUFFIXES
from defect_tf.data.labels import LabelTable, label_error, normalise_image_path, read_labels
from defect_tf.data.splits import SPLITS
from defect_tf.errors import LabelError

PATH_COLUMNS = ("image", "path", "file", "filename", "filepath", "image_path", "file_name")
CLASS_COLUMNS = ("label", "class", "category", "class_name")
# A folder with one of these names holds the images without the defect: with two class folders and
# --task binary, the other folder is the class detected. Without one, the second folder in name order is.
NEGATIVE_FOLDER_NAMES = ("good", "ok", "normal", "intact", "pass", "clean", "negative", "no_defect", "nodefect",
                         "undamaged", "background")


@dataclass(frozen=True)
class LabelSource:
    """Labels as read, before any check: the table, what could not be read, and a split the layout fixes."""

    table: LabelTable
    problems: list[str]
    layout: str  # "label file", "class CSV" or "class folders"; said in the log
    split: dict[str, str] | None = None  # image -> train / val / test, from the folders

    @property
    def one_class_per_image(self) -> bool:
        """Whether the layout can only say one class per image (its default task is then multi-class)."""
        return self.layout != "label file"


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


def binary_from_classes(source: LabelSource) -> LabelSource:
    """Two classes as one attribute to detect: 1 for the defect class, 0 for the other (see NEGATIVE_FOLDER_NAMES)."""
    table = source.table
    if len(table.attributes) != 2:
        return source
    negatives = [j for j, name in enumerate(table.attributes) if name.lower() in NEGATIVE_FOLDER_NAMES]
    positive = 1 - negatives[0] if len(negatives) == 1 else 1
    values = np.where((table.values < 0).all(axis=1, keepdims=True), -1.0, table.values[:, [positive]])
    return LabelSource(LabelTable([table.attributes[positive]], table.images, values.astype(np.float32),
                                  table.notes), source.problems, source.layout, source.split)


def _read_label_file(path: Path) -> LabelSource:
    header = [field.strip().lower() for field in _first_line(path).split(",")]
    if len(header) == 2 and header[0] in PATH_COLUMNS and header[1] in CLASS_COLUMNS:
        return _read_class_csv(path)
    table, problems = read_labels(path)
    return LabelSource(table, problems, "label file")


def _first_line(path: Path) -> str:
    """The header line, or "" when the file can't be read (read_labels then says why)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return ""
    return next((line for line in text.splitlines() if line.strip()), "")


def _read_class_csv(path: Path) -> LabelSource:
    """`path,class` rows (class names, not 0/1): one class per image; an empty class is unknown (NA)."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    rows = [(number, row) for number, row in enumerate(rows, 1) if any(cell.strip() for cell in row)]
    problems, pairs = [], []
    for number, row in rows[1:]:
        if len(row) != 2 or not row[0].strip():
            problems.append(f"{path}:{number}: expected `image,class`, found {','.join(row)[:80]!r}")
            continue
        pairs.append((normalise_image_path(row[0].strip()), row[1].strip()))
    classes = sorted({name for _, name in pairs if name and name.lower() not in ("na", "n/a", "nan")})
    table, more = _one_hot_table(classes, pairs, path)
    return LabelSource(table, problems + more, "class CSV")


def _one_hot_table(classes: list[str], pairs: list[tuple[str, str]], where: Path) -> tuple[LabelTable, list[str]]:
    """image -> class pairs as a table: one-hot rows, all NA for an unknown (empty or NA) class; an image named
    twice with two classes is a problem, twice with the same class a note."""
    column = {name: j for j, name in enumerate(classes)}
    first: dict[str, str] = {}
    images, rows, notes, problems = [], [], [], []
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


def _images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def _class_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def read_class_folders(data: Path) -> LabelSource:
    """One sub-folder per class (`data/<class>/...`), or `data/train|val|test/<class>/...` with the split fixed."""
    if not data.is_dir():
        raise LabelError(f"--data {data}: folder not found" if not data.exists() else f"--data {data}: not a folder")
    folders = _class_folders(data)
    parts = [folder for folder in folders if folder.name in SPLITS]
    pairs, split, problems = [], None, []
    if parts and "train" in {part.name for part in parts}:
        others = [folder.name for folder in folders if folder.name not in SPLITS]
        if others:
            problems.append(f"{data}: next to train/ val/ test/ there are other folders ({', '.join(others)}); "
                            "put every class folder inside the parts")
        split = {}
        for part in parts:
            for class_folder in _class_folders(part):
                for image in _images_in(class_folder):
                    name = image.relative_to(data).as_posix()
                    pairs.append((name, class_folder.name))
                    split[name] = part.name
        layout_hint = "train/<class>/"
    else:
        for class_folder in folders:
            pairs += [(image.relative_to(data).as_posix(), class_folder.name) for image in _images_in(class_folder)]
        layout_hint = "<class>/"
    classes = sorted({name for _, name in pairs})
    if len(classes) < 2 and not problems:
        problems.append(f"--data {data} without --labels: expected one sub-folder of images per class "
                        f"({layout_hint}...), found {len(classes)} class folder(s) with images"
                        + ("" if classes else "; or give a label file with --labels FILE"))
    table, more = _one_hot_table(classes, pairs, data)
    return LabelSource(table, problems + more, "class folders", split)
