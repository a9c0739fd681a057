"""The label file: one header naming the attributes, then `image v1 v2 ...` rows of 1 / 0 / NA.

NA (unknown) is stored as -1.0. `known_mask` is the single definition of "this label counts",
shared by the loss, the class weights, the calibration and every metric.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.errors import LabelError
from defect_tf.io.untrusted import UnreadableFileError, read_text
from defect_tf.limits import MAX_TEXT_FILE_BYTES

NA = -1.0
NA_SPELLINGS = ("na", "n/a", "nan", "-1")  # any case: what spreadsheets and pandas write for "unknown"
_VALUES = {"1": 1.0, "0": 0.0, **{spelling: NA for spelling in NA_SPELLINGS}}
_MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class LabelTable:
    """Parsed labels: `values[i, j]` is image i's label for attribute j (1, 0 or NA = -1)."""

    attributes: list[str]
    images: list[str]
    values: np.ndarray
    notes: tuple[str, ...] = ()  # harmless oddities found while parsing (e.g. a row listed twice)

    def subset(self, rows: np.ndarray | list[int]) -> "LabelTable":
        rows = np.asarray(rows, dtype=int)
        return LabelTable(self.attributes, [self.images[i] for i in rows], self.values[rows])

    def only(self, images) -> "LabelTable":
        """The rows whose image is among `images` (e.g. one part of a split), in this table's order."""
        wanted = set(images)
        return self.subset([i for i, image in enumerate(self.images) if image in wanted])


def known_mask(labels):
    """True where a label is known (0 or 1), False where it is NA; works on NumPy arrays and tensors."""
    return labels >= 0


def header_fingerprint(attributes: list[str]) -> str:
    """A short hash of the attribute names in order, recorded in a bundle to recognise its label scheme."""
    return hashlib.sha256("\t".join(attributes).encode("utf-8")).hexdigest()[:16]


def split_fields(line: str, comma_separated: bool) -> list[str]:
    """Split a label-file line on commas (a comma-separated file) or on runs of spaces or tabs."""
    if comma_separated:
        return [field.strip() for field in line.split(",")]
    return line.split()


def normalise_image_path(path: str) -> str:
    """One spelling per file, so one image can't be two rows: `./a.png` and `b/../a.png` are `a.png`."""
    return posixpath.normpath(path) if path else path


def unlistable(images: list[str], where: str) -> list[str]:
    """A problem for image names that hold a line break (a name may, on Linux): no list the tool writes or reads
    (split.txt, a label file) could hold them on one line."""
    broken = [image for image in images if len(f"<{image}>".splitlines()) > 1]
    if not broken:
        return []
    return [f"{where}: {len(broken)} image name(s) hold a line break, which no list file can hold on one line, e.g. "
            f"{broken[0]!r}; rename them"]


def leaves_folder(path: str) -> bool:
    """True for an image path that points outside the data folder (absolute, or up through `..`)."""
    return posixpath.isabs(path) or path == ".." or path.startswith("../")


def parse_labels(path: str | Path) -> LabelTable:
    """Read a label file; every malformed line is reported at once as a LabelError naming file and line."""
    table, problems = read_labels(path)
    if problems:
        raise label_error(problems)
    return table


def label_error(problems: list[str]) -> LabelError:
    """One error listing the first problems (a long list would bury the first, which is often the cause)."""
    shown = problems[:_MAX_REPORTED_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more problems")
    return LabelError("\n".join(shown))


def read_label_text(path: str | Path, what: str = "label file") -> str:
    """A label (or split) file's text, read through the guarded reader; a LabelError says why it can't be read."""
    try:
        return read_text(path, MAX_TEXT_FILE_BYTES, what)
    except UnreadableFileError as error:
        if error.reason == "file not found":
            raise LabelError(f"{path}: {what} not found") from None
        raise LabelError(f"{path}: cannot read the {what} ({error.reason})") from None


def read_labels(path: str | Path, text: str | None = None) -> tuple[LabelTable, list[str]]:
    """The rows that parse, and a `file:line: what` message for every line that does not.

    For `train.py --check`, which goes on to check the images of the good rows; an unreadable or
    empty file is still a LabelError. `text`: the file's text if the caller has already read it.
    """
    path = Path(path)
    if text is None:
        text = read_label_text(path)

    lines = [(number, line.strip()) for number, line in enumerate(re.split(r"\r\n|\r|\n", text), 1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise LabelError(f"{path}: label file is empty; expected a header `image <attr1> <attr2> ...`")

    header_line, header = lines[0]
    comma_separated = "," in header  # the header decides, so a comma inside a file name is no problem
    header_fields = split_fields(header, comma_separated)
    attributes = header_fields[1:]
    problems = []
    if not attributes:
        problems.append(f"{path}:{header_line}: header names no attributes; expected `image <attr1> <attr2> ...`")
    if any(_VALUES.get(field.lower()) is not None for field in header_fields):
        problems.append(f"{path}:{header_line}: the first line looks like data, not a header `image <attr1> ...`")
    duplicates = sorted({name for name in attributes if attributes.count(name) > 1})
    if duplicates:
        problems.append(f"{path}:{header_line}: attribute names repeated in the header: {', '.join(duplicates)}")

    images, rows, notes, first_seen = [], [], [], {}
    for number, line in lines[1:]:
        fields = split_fields(line, comma_separated)
        if len(fields) != len(header_fields):
            separator = ("comma-separated, as its header is" if comma_separated else
                         "separated by spaces, as its header is; a file name with spaces needs a comma-separated file")
            problems.append(
                f"{path}:{number}: expected {len(header_fields)} fields (image + {len(attributes)} attributes), "
                f"found {len(fields)} (fields are {separator})"
            )
            continue
        spelled, fields[0] = fields[0], normalise_image_path(fields[0])
        values = [_VALUES.get(field.lower()) for field in fields[1:]]
        bad = [f"{name}={field!r}" for name, field, value in zip(attributes, fields[1:], values) if value is None]
        if bad:
            problems.append(f"{path}:{number}: values must be 1, 0 or NA (or N/A, NaN, -1); found {', '.join(bad)}")
            continue
        if fields[0] in first_seen:
            first_line, first_values = first_seen[fields[0]]
            again = fields[0] if spelled == fields[0] else f"{fields[0]} (spelled {spelled})"
            if first_values == values:
                notes.append(f"{path}:{number}: {again} is listed again with the same labels as line "
                             f"{first_line}; using it once")
            else:
                problems.append(f"{path}:{number}: {again} is listed again with different labels than line "
                                f"{first_line}; keep one row")
            continue
        first_seen[fields[0]] = (number, values)
        images.append(fields[0])
        rows.append(values)

    problems += unlistable(images, str(path))
    if not problems and not images:
        problems.append(f"{path}: the header is there but no image rows follow")
    values = np.asarray(rows, dtype=np.float32).reshape(len(images), len(attributes))
    return LabelTable(attributes, images, values, tuple(notes)), problems


def format_labels(table: LabelTable) -> str:
    """The label file text for a table (space-separated, NA for unknown), as `parse_labels` reads it."""
    def cell(value: float) -> str:
        return "NA" if value < 0 else str(int(value))

    lines = [" ".join(["image", *table.attributes])]
    lines += [" ".join([image, *map(cell, row)]) for image, row in zip(table.images, table.values)]
    return "\n".join(lines) + "\n"


def label_counts(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per attribute: number of positive, negative and NA labels."""
    known = known_mask(values)
    return {
        "positive": ((values == 1) & known).sum(axis=0),
        "negative": ((values == 0) & known).sum(axis=0),
        "na": (~known).sum(axis=0),
    }


def summarize(table: LabelTable) -> str:
    """A printable table: images, and per attribute the counts of positive / negative / NA labels."""
    counts = label_counts(table.values)
    width = max([len("attribute"), *(len(name) for name in table.attributes)])
    images, attributes = len(table.images), len(table.attributes)
    lines = [f"{images} image{'' if images == 1 else 's'}, {attributes} attribute{'' if attributes == 1 else 's'}",
             f"  {'attribute':<{width}} {'positive':>9} {'negative':>9} {'NA':>9}"]
    for j, name in enumerate(table.attributes):
        lines.append(f"  {name:<{width}} {counts['positive'][j]:>9} {counts['negative'][j]:>9} {counts['na'][j]:>9}")
    return "\n".join(lines)
