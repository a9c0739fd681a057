"""The model bundle with Keras: saved atomically, loaded in safe mode.

Layout (`layout.py`): `<output>/bundle/model.keras` and `<output>/bundle/bundle.json` (attribute names, image
size, thresholds, backbone, training settings, split, library versions, checksums). The bundle is written
under a temporary name and renamed into place, so a crash leaves the previous bundle, never half
of a new one. Models are loaded with Keras's safe mode: no Python code is run from the file.
"""

from __future__ import annotations

import json
import platform
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from defect_tf.bundle.layout import (
    BUNDLE_DIR,
    METADATA_FILE,
    MODEL_FILE,
    find_bundle,
    read_metadata,
    sha256_of,
    verify_file,
)
from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.errors import BundleError
from defect_tf.io.files import replace_folder
from defect_tf.io.untrusted import UnreadableFileError, check_file
from defect_tf.limits import MAX_MODEL_FILE_BYTES
from defect_tf.models import heads, keras_applications  # noqa: F401  (their layers are registered for loading)
from defect_tf.tasks import Task, get_task


@dataclass
class Bundle:
    model: keras.Model
    metadata: BundleMetadata
    path: Path

    @property
    def attributes(self) -> list[str]:
        return self.metadata.attributes

    @property
    def image_size(self) -> int:
        return int(self.metadata.image_size)

    @property
    def untrained(self) -> list[str]:
        """Attributes with no known label in the training split: never reported as detected."""
        return list(self.metadata.untrained)

    @property
    def task(self) -> Task:
        return get_task(self.metadata.task)

    @property
    def untrained_mask(self) -> np.ndarray:
        """True for each attribute the model was not trained on (never decided)."""
        return self.metadata.untrained_mask()

    @property
    def thresholds(self) -> np.ndarray:
        """Decision thresholds per attribute; infinite (never detected) for an untrained attribute; NaN for a
        task that decides without thresholds."""
        return self.metadata.decision_thresholds()


def library_versions() -> dict[str, str]:
    """Versions of the libraries a bundle depends on, recorded so a mismatch can be explained later."""
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def save_bundle(output_dir: str | Path, model: keras.Model, metadata: BundleMetadata) -> Path:
    """Write model and metadata to `<output_dir>/bundle/` atomically; returns the bundle's path."""
    inference_model = keras.Model(model.inputs, model.outputs, name=model.name)  # uncompiled: no optimizer state

    def fill(staging: Path) -> None:
        inference_model.save(staging / MODEL_FILE)
        record = {**metadata.to_json(), "versions": library_versions(),
                  "checksums": {MODEL_FILE: sha256_of(staging / MODEL_FILE)}}
        (staging / METADATA_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")

    return replace_folder(Path(output_dir) / BUNDLE_DIR, fill, intact="the previous bundle is intact")


def check_model_file(location: Path, metadata: BundleMetadata, name: str = MODEL_FILE) -> None:
    """The bundle's Keras model file: a ZIP archive of bounded unpacked size, then checked by `layout.verify_file`
    (the very file the bundle was saved with)."""
    path = location / name
    try:
        check_file(path, MAX_MODEL_FILE_BYTES, "model file")
    except UnreadableFileError as error:
        raise BundleError(f"unreadable model file: {error}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        raise BundleError(f"{path}: not a Keras model file (corrupt or truncated); train the model again") from None
    if unpacked > MAX_MODEL_FILE_BYTES:
        raise BundleError(f"{path}: would unpack to {unpacked:,} bytes, over the {MAX_MODEL_FILE_BYTES:,} limit")
    verify_file(location, metadata, name)


def _mismatches(metadata: BundleMetadata, model: keras.Model) -> list[str]:
    """Ways the model file disagrees with its metadata (e.g. one of the two files was replaced)."""
    problems = []
    outputs, inputs = model.output_shape[-1], tuple(model.input_shape[1:3])
    if outputs != len(metadata.attributes):
        problems.append(f"the model has {outputs} outputs but the metadata names {len(metadata.attributes)} "
                        "attributes")
    if get_task(metadata.task).uses_thresholds and len(metadata.thresholds) != len(metadata.attributes):
        problems.append(f"{len(metadata.thresholds)} thresholds for {len(metadata.attributes)} attributes")
    if None not in inputs and inputs != (metadata.image_size,) * 2:
        problems.append(f"the model takes {inputs[0]}x{inputs[1]} images but the metadata says "
                        f"{metadata.image_size} px")
    return problems


def load_bundle(path: str | Path, attributes: list[str] | None = None, image_size: int | None = None) -> Bundle:
    """Load a bundle written by `save_bundle` (or the output folder holding it), in Keras safe mode.

    A caller that needs particular `attributes` (in that order) or an `image_size` passes them, and
    a bundle made for something else is a BundleError saying what differs.
    """
    location = find_bundle(path)
    metadata = read_metadata(location)
    if attributes is not None and list(attributes) != metadata.attributes:
        raise BundleError(f"{location}: the model predicts {metadata.attributes}, not the expected "
                          f"{list(attributes)}")
    if image_size is not None and int(image_size) != int(metadata.image_size):
        raise BundleError(f"{location}: the model takes {metadata.image_size} px images, not the expected "
                          f"{image_size} px")
    check_model_file(location, metadata)
    try:
        model = keras.saving.load_model(location / MODEL_FILE, compile=False, safe_mode=True)
    except Exception as error:
        raise BundleError(f"{location / MODEL_FILE}: cannot load the model ({error})") from None
    problems = _mismatches(metadata, model)
    if problems:
        raise BundleError(f"{location}: model.keras and bundle.json do not belong together: {'; '.join(problems)}")
    return Bundle(model, metadata, location)
