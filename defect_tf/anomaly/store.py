"""A localiser bundle on disk: saved atomically beside its `bundle.json`, found and loaded with every file checked
against its checksum, and used: photo -> map, score, decision, outline, regions.

Layout: `<output>/bundle/` holds `bundle.json` (format `defect_tf.localizer/N`) and the model's files. By default
`train.py --task anomaly` writes to `outputs/localizer/`, so the classifier in `outputs/` and the localiser
beside it make the two stages of one pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.anomaly.base import AnomalyMaps, AnomalyModel
from defect_tf.anomaly.metadata import LocalizerMetadata
from defect_tf.anomaly.regions import Region, defect_mask, find_regions
from defect_tf.anomaly.runtimes import open_maps
from defect_tf.bundle.layout import BUNDLE_DIR, METADATA_FILE, is_localizer, read_record, sha256_of
from defect_tf.errors import BundleError
from defect_tf.io.files import previous_folders, replace_folder, write_text
from defect_tf.io.output_folder import DEFAULT_OUTPUT

LOCALIZER_DIR = "localizer"
DEFAULT_LOCALIZER_OUTPUT = str(Path(DEFAULT_OUTPUT) / LOCALIZER_DIR)


@dataclass
class Localization:
    """What a localiser says about one photo."""

    score: float
    defective: bool
    anomaly_map: np.ndarray  # at the photo's size
    mask: np.ndarray  # the cleaned outline (all False for a photo called intact)
    regions: list[Region]

    def to_json(self) -> dict:
        area = int(self.mask.sum())
        return {"anomaly_score": round(self.score, 6), "defective": self.defective, "defect_pixels": area,
                "defect_share": round(area / self.mask.size, 6), "regions": [r.to_json() for r in self.regions]}


@dataclass
class Localizer:
    model: AnomalyMaps  # the trained model (Keras), or its exported network's maps (anomaly/runtimes.py)
    metadata: LocalizerMetadata
    path: Path
    runtime: str = "Keras"  # what runs its network, as the user is told

    def describe(self) -> str:
        head = self.metadata.settings.get("head")
        head = "" if head is None else " with a defect head" if "floor" in head else " with a whole defect head"
        return f"{self.metadata.model} localiser{head}, {self.runtime}"

    def locate(self, photo: np.ndarray, outline: bool | None = None) -> Localization:
        """The photo's map and score; its outline and regions when the score reaches the image threshold (or, with
        `outline` given, when a first stage has decided the photo is damaged)."""
        anomaly_map, score = self.model.answer(photo)
        defective = score >= self.metadata.image_threshold
        drawn = defective if outline is None else outline
        mask = defect_mask(anomaly_map, self.metadata.pixel_threshold) if drawn else np.zeros(anomaly_map.shape, bool)
        return Localization(score, bool(defective), anomaly_map, mask, find_regions(mask, anomaly_map))


def save_localizer(output_dir: str | Path, model: AnomalyModel, metadata: LocalizerMetadata) -> Path:
    """Write the model's files and `bundle.json` to `<output_dir>/bundle/` atomically."""

    from defect_tf.bundle.store import library_versions

    def fill(staging: Path) -> None:
        model.save(staging)
        record = {**metadata.to_json(), "versions": library_versions(),
                  "checksums": {name: sha256_of(staging / name) for name in model.saved_files()}}
        (staging / METADATA_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")

    return replace_folder(Path(output_dir) / BUNDLE_DIR, fill, intact="the previous localiser is intact")


def find_localizer(path: str | Path) -> Path:
    """A localiser bundle folder: `path` itself, its `bundle/`, or the `localizer/bundle/` beside a classifier."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    for output in (path, path / LOCALIZER_DIR):
        for candidate in (output, output / BUNDLE_DIR, *previous_folders(output / BUNDLE_DIR)):
            if (candidate / METADATA_FILE).is_file() and is_localizer(read_record(candidate)):
                return candidate
    raise BundleError(f"no anomaly localiser in {path}: train one with python train.py --task anomaly --data "
                      f"INTACT_PHOTOS [--output {path}]")


def has_localizer(path: str | Path) -> bool:
    """Whether `path` holds a localiser (see `find_localizer`)."""
    try:
        find_localizer(path)
    except BundleError:
        return False
    return True


def load_localizer(path: str | Path, runtime: str = "auto", threads: int | None = None) -> Localizer:
    """The localiser in `path` (see `find_localizer`), each of its files checked against its checksum, its network
    run by `runtime` (anomaly/runtimes.py: auto takes its ONNX export where there is one)."""
    location = find_localizer(path)
    metadata = LocalizerMetadata.from_json(read_record(location), str(location / METADATA_FILE))
    model, described = open_maps(location, metadata, runtime, threads)
    return Localizer(model, metadata, location, described)


def write_localizer_metadata(location: Path, metadata: LocalizerMetadata) -> None:
    """Replace a localiser's `bundle.json` atomically (after an export is added)."""
    write_text(location / METADATA_FILE, json.dumps(metadata.to_json(), indent=1), "the previous bundle.json is intact")
