"""A bundle's folder without TensorFlow: where its files are, its metadata read and rewritten, its files' checksums.

Layout: `<output>/bundle/model.keras` (the Keras model, `store.py`), `<output>/bundle/bundle.json` (the metadata,
`metadata.py`), and any exported model beside them (`export/`), each with its SHA-256 recorded in `bundle.json`.
A runtime without TensorFlow reads a bundle through this module alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.errors import BundleError
from defect_tf.io.files import previous_folders, write_text
from defect_tf.io.untrusted import UnreadableFileError, check_file, read_text
from defect_tf.limits import MAX_JSON_FILE_BYTES, MAX_MODEL_FILE_BYTES

BUNDLE_DIR = "bundle"
MODEL_FILE = "model.keras"
METADATA_FILE = "bundle.json"
LOCALIZER_PREFIX = "defect_tf.localizer/"  # the format of an anomaly localiser's bundle.json (anomaly/metadata.py)


def find_bundle(path: str | Path) -> Path:
    """Accept a bundle folder, the output folder that holds one, or a model file in a bundle (falling back to the
    previous bundle if a save was interrupted between its two renames)."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"--model {path}: no such folder; train a model first (python train.py --data DIR "
                          f"--labels FILE --output {path}) or point --model at a folder that train.py wrote")
    if path.is_file():  # a model file inside a bundle: its bundle
        path = path.parent
    for candidate in (path, path / BUNDLE_DIR, *previous_folders(path / BUNDLE_DIR)):
        if (candidate / METADATA_FILE).is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    raise BundleError(f"no model bundle in {path}: train one first (python train.py --data DIR --labels FILE "
                      f"--output {path}) or point --model at a folder that train.py wrote")


def read_record(location: Path) -> dict:
    """A bundle folder's `bundle.json` as JSON, read through the guarded reader (either kind: classifier or
    localiser)."""
    try:
        saved = json.loads(read_text(location / METADATA_FILE, MAX_JSON_FILE_BYTES, "bundle metadata file"))
    except UnreadableFileError as error:
        raise BundleError(f"unreadable bundle metadata: {error}") from None
    except ValueError as error:
        raise BundleError(f"{location / METADATA_FILE}: unreadable bundle metadata ({error})") from None
    return saved if isinstance(saved, dict) else {}


def is_localizer(record: dict) -> bool:
    """Whether a `bundle.json` record is an anomaly localiser's (anomaly/metadata.py), not a classifier's."""
    return str(record.get("format", "")).startswith(LOCALIZER_PREFIX)


def holds_classifier(path: str | Path) -> bool:
    """Whether `path` (a bundle, its output folder or a model file) holds a classifier, not only a localiser."""
    try:
        return not is_localizer(read_record(find_bundle(path)))
    except BundleError:
        return False


def read_metadata(location: Path) -> BundleMetadata:
    """A classifier bundle folder's `bundle.json`, read through the guarded reader, migrated and checked."""
    saved = read_record(location)
    if is_localizer(saved):
        raise BundleError(f"{location} holds an anomaly localiser ({str(saved.get('model'))[:40]}), not a "
                          "classifier: label photos with it by python inference.py PHOTO --model "
                          f"{location.parent} --localize OUT_DIR")
    return BundleMetadata.from_json(saved, str(location / METADATA_FILE))  # older formats migrate


def write_metadata(location: Path, metadata: BundleMetadata) -> None:
    """Replace a bundle's `bundle.json` atomically (after an export is added)."""
    write_text(location / METADATA_FILE, json.dumps(metadata.to_json(), indent=1), "the previous bundle.json is intact")


def sha256_of(path: Path) -> str:
    """A file's SHA-256 (a folder's: of its files' names and contents, in name order), read in chunks."""
    digest = hashlib.sha256()
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    for item in files:
        if path.is_dir():
            digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        with open(item, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def verify_file(location: Path, metadata: BundleMetadata, name: str) -> Path:
    """A model file of the bundle, checked: a regular file (or folder) of bounded size, and the very one the
    metadata was saved with (its SHA-256; bundles saved before checksums were recorded cannot be checked)."""
    path = location / name
    if not path.is_dir():
        try:
            check_file(path, MAX_MODEL_FILE_BYTES, "model file")
        except UnreadableFileError as error:
            raise BundleError(f"unreadable model file: {error}") from None
    elif not path.exists():
        raise BundleError(f"{path}: missing from the bundle")
    expected = metadata.checksums.get(name)
    if expected is not None and sha256_of(path) != expected:
        raise BundleError(f"{path} is not the model {METADATA_FILE} was saved with (its SHA-256 differs): it was "
                          "replaced or damaged. Restore the bundle folder as train.py wrote it, or train again")
    return path
