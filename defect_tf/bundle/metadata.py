"""What a bundle says about its model (`bundle.json`): one typed, versioned record, read through one migration path.

Every reader uses these fields instead of dictionary keys. A later format adds its migration to
`MIGRATIONS` (old format -> a function returning the next format's dict), so old bundles keep loading.
Imports neither TensorFlow nor Keras: a runtime can read a bundle's contract without them. The fields a model
is used by (attributes, image size, thresholds, task) are checked when read, so a hand-edited or forged record is
one line, not a wrong answer later.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np

from defect_tf.decisions import DEFAULT_TASK, RULES
from defect_tf.errors import BundleError

FORMAT = "defect_tf.bundle/4"
# format -> function(dict) -> dict of the next format
MIGRATIONS: dict[str, Callable[[dict], dict]] = {
    # format 1 predates tasks: every bundle was multi-label
    "defect_tf.bundle/1": lambda data: {**data, "task": "multilabel", "format": "defect_tf.bundle/2"},
    # format 2 predates checksums: its model file cannot be proved to be the one it was saved with
    "defect_tf.bundle/2": lambda data: {**data, "checksums": {}, "format": "defect_tf.bundle/3"},
    # format 3 predates exports: it holds only the Keras model
    "defect_tf.bundle/3": lambda data: {**data, "exports": {}, "format": "defect_tf.bundle/4"},
}
# How a photo becomes the model's input, the same in training and in every runtime (data/images.py, runtime/):
# decoded to RGB, turned upright by its EXIF orientation, resized to image_size x image_size with antialiased
# bilinear filtering (no aspect ratio kept), float32 values 0-255. An exported model takes exactly that.
INPUT_RULE = "RGB, upright by EXIF, antialiased bilinear resize to image_size squared, float32 0-255"
REQUIRED = ("attributes", "image_size", "thresholds")
IMAGE_SIZES = (16, 4096)  # what a bundle may say its model takes (training allows 32-1024)


def migrated(data, migrations: dict[str, Callable[[dict], dict]]) -> tuple[dict, str | None]:
    """A saved record walked through `migrations` (format -> next format's dict) as far as they go, and its format
    then (None for a record that is not a mapping)."""
    found = data.get("format") if isinstance(data, dict) else None
    while found in migrations:
        data = migrations[found](data)
        found = data.get("format")
    return data, found


@dataclass
class BundleMetadata:
    """The model's contract (attributes, input size, thresholds) and how it was made. Fields other than the
    first three are empty for a bundle saved outside a training run (tests, benchmarks)."""

    attributes: list[str]
    image_size: int
    thresholds: list[float]  # one per attribute; empty for a task that decides without them (multiclass)
    task: str = DEFAULT_TASK
    untrained: list[str] = field(default_factory=list)  # attributes without a known training label: never detected
    backbone: str = ""
    pretrained: bool = False
    precision: str = ""
    label_header_fingerprint: str = ""
    settings: dict = field(default_factory=dict)  # every TrainConfig field (JSON)
    data_dir: str = ""
    labels_file: str = ""
    split: dict[str, list[str]] = field(default_factory=dict)  # part -> image names
    seen_digests: list[str] = field(default_factory=list)  # content digests of the train and val images
    epochs_trained: int = 0
    trained_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)  # library versions at saving
    checksums: dict[str, str] = field(default_factory=dict)  # file in the bundle -> its SHA-256 when saved
    exports: dict[str, dict] = field(default_factory=dict)  # format -> ExportRecord (JSON): models exported beside it
    format: str = FORMAT

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data, where: str) -> BundleMetadata:
        """The record a `bundle.json` holds, migrated to the current format and checked; `where` names the file."""
        data, found = migrated(data, MIGRATIONS)
        if found != FORMAT:
            raise BundleError(f"{where}: not a {FORMAT} bundle (format {found!r})")
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise BundleError(f"{where}: incomplete bundle metadata (no {', '.join(missing)})")
        if data.get("task", DEFAULT_TASK) not in RULES:
            raise BundleError(f"{where}: the model's task {data['task']!r} is not one this version knows "
                              f"({', '.join(RULES)}); was it made by a newer defect_tf?")
        known = {item.name for item in fields(cls)}
        metadata = cls(**{key: value for key, value in data.items() if key in known})
        problems = metadata.problems()
        if problems:
            raise BundleError(f"{where}: bundle metadata that cannot be used: {'; '.join(problems)}")
        return metadata

    def untrained_mask(self) -> np.ndarray:
        """True for each attribute the model was not trained on (never decided)."""
        return np.isin(self.attributes, self.untrained)

    def decision_thresholds(self) -> np.ndarray:
        """Thresholds per attribute; infinite (never detected) for an untrained attribute; NaN for a task that decides
        without thresholds."""
        if not RULES[self.task].uses_thresholds:
            return np.full(len(self.attributes), np.nan)
        return np.where(self.untrained_mask(), np.inf, np.asarray(self.thresholds, dtype=np.float64))

    def thresholds_by_attribute(self) -> dict[str, float | None]:
        """Each attribute's threshold as a report shows it: None for an untrained attribute or a task without them."""
        return {name: None if math.isinf(cut) or math.isnan(cut) else float(cut)
                for name, cut in zip(self.attributes, self.decision_thresholds())}

    def export(self, name: str) -> ExportRecord | None:
        """The record of the model exported as `name` (a format of `export/formats.py`), if there is one."""
        return ExportRecord.from_json(self.exports[name]) if name in self.exports else None

    def problems(self) -> list[str]:
        """What makes this record unusable: types and ranges of the fields a model is used by."""
        problems = []
        names = self.attributes
        if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
            problems.append("attributes must be a list of names")
        elif len(set(names)) != len(names):
            problems.append("attribute names repeat")
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or not IMAGE_SIZES[0] <= size <= IMAGE_SIZES[1]:
            problems.append(f"image_size must be a whole number from {IMAGE_SIZES[0]} to {IMAGE_SIZES[1]}, not "
                            f"{str(size)[:20]}")
        thresholds = self.thresholds
        if not isinstance(thresholds, list):
            problems.append("thresholds must be a list")
        elif RULES[self.task].uses_thresholds:
            bad = [str(value)[:20] for value in thresholds if isinstance(value, bool)
                   or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1]
            if bad:
                problems.append(f"thresholds must be probabilities from 0 to 1, not {', '.join(bad[:3])}")
        if not isinstance(self.untrained, list) or not all(isinstance(name, str) for name in self.untrained):
            problems.append("untrained must be a list of attribute names")
        for name in ("checksums", "split", "settings", "versions", "exports"):
            if not isinstance(getattr(self, name), dict):
                problems.append(f"{name} must be a mapping")
        return problems + export_problems(self.exports)


def export_problems(exports) -> list[str]:
    """What makes a bundle's `exports` record unusable: each must name a file inside the bundle folder."""
    problems = []
    for name, record in (exports.items() if isinstance(exports, dict) else ()):
        file = record.get("file") if isinstance(record, dict) else None
        if not isinstance(file, str) or not file or "/" in file or "\\" in file or file.startswith("."):
            problems.append(f"exports.{name} must name a file inside the bundle")
    return problems


@dataclass
class ExportRecord:
    """A model exported beside the Keras one: its file, what runs it, and how closely it matched Keras."""

    file: str  # inside the bundle folder
    runtime: str  # what runs it: "onnxruntime", "litert" or "tensorflow"
    quantization: str = "none"  # "none", "dynamic" (int8 weights) or "full" (int8 weights and activations)
    input_name: str = ""
    input_rule: str = INPUT_RULE
    parity: dict = field(default_factory=dict)  # measured on the test split: images, max difference, decisions
    exported_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ExportRecord:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})
