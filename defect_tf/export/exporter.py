"""Exporting a bundle: the probability graph written by the format's writer into the bundle folder (under a
temporary name, renamed once it passes), its parity with Keras measured by the runtime that will run it, and a
record of both in bundle.json (with the file's SHA-256)."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from defect_tf.bundle.layout import sha256_of, write_metadata
from defect_tf.bundle.metadata import ExportRecord
from defect_tf.bundle.store import Bundle, load_bundle
from defect_tf.data.images import read_image
from defect_tf.data.sources import load_source
from defect_tf.errors import DefectTFError, ImageError
from defect_tf.export import parity
from defect_tf.export.formats import FORMATS, ExportFormat, get_format
from defect_tf.export.graph import INPUT_NAME, probability_model
from defect_tf.io import output_folder
from defect_tf.io.untrusted import describe_size
from defect_tf.tasks import task_labels

PARITY_IMAGES = 500  # test images compared at most
CALIBRATION_IMAGES = 200  # training images that calibrate a full-integer model at most
RANDOM_IMAGES = 32  # inputs compared when the bundle's images are gone


def check_options(export: ExportFormat, quantization: str) -> None:
    """Refuse what the format cannot do (Ultralytics' per-format argument checks)."""
    if quantization not in export.quantizations:
        can = [name for name, other in FORMATS.items() if quantization in other.quantizations]
        raise DefectTFError(f"--int8 {quantization} is for --format {' or '.join(can)}; --format {export.name} is "
                            "exported in float32")


def _images(bundle: Bundle, part: str, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Up to `limit` images of one of the bundle's splits that still exist, as the model's inputs, and their names."""
    names = [name for name in bundle.metadata.split.get(part, [])
             if (Path(bundle.metadata.data_dir) / name).is_file()]
    if len(names) > limit:
        names = sorted(rng.choice(names, limit, replace=False))
    inputs, kept = [], []
    for name in names:
        try:
            inputs.append(read_image(str(Path(bundle.metadata.data_dir) / name), bundle.image_size))
            kept.append(name)
        except ImageError:
            continue
    size = bundle.image_size
    return (np.stack(inputs) if inputs else np.zeros((0, size, size, 3), np.float32)), kept


def _labels(bundle: Bundle, names: list[str]) -> np.ndarray | None:
    """The labels of `names` as the task prepares them, from the bundle's own label file or folders (None if gone)."""
    try:
        source = load_source(bundle.metadata.data_dir, bundle.metadata.labels_file or None)
        positive = bundle.attributes[0] if bundle.metadata.task == "binary" and source.one_class_per_image else None
        _, source, problems = task_labels(source, bundle.metadata.task, positive)
    except DefectTFError:
        return None
    if problems or source.table.attributes != bundle.attributes:
        return None
    rows = {image: row for image, row in zip(source.table.images, source.table.values)}
    return np.stack([rows[name] for name in names]) if all(name in rows for name in names) else None


def _run_export(export: ExportFormat, path: Path, bundle: Bundle):
    """(a function of a batch giving the exported model's probabilities, run by the runtime meant for it; the name
    of the model's input in that runtime)."""
    if export.runtime == "tensorflow":
        from defect_tf.export.saved_model_writer import run

        return run(path), INPUT_NAME
    from defect_tf.runtime.select import RUNTIMES

    module, class_name, _ = RUNTIMES[export.runtime]
    inferencer = getattr(importlib.import_module(module), class_name)(bundle.path, bundle.metadata, path)
    return inferencer.forward, inferencer.input_name


def _predict(function, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    parts = [np.asarray(function(inputs[start:start + batch_size]), dtype=np.float64)
             for start in range(0, len(inputs), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def export_bundle(model: str | Path, format_name: str, quantization: str = "none", accept_drop: bool = False,
                  log=print) -> ExportRecord:
    """Export the bundle in `model` to `format_name`, prove its parity with Keras, and record it in bundle.json."""
    export = get_format(format_name)
    check_options(export, quantization)
    bundle = load_bundle(model)
    rng = np.random.default_rng(0)
    inputs, names = _images(bundle, "test", PARITY_IMAGES, rng)
    source = "test"
    if not len(inputs):
        inputs, names, source = _images(bundle, "val", PARITY_IMAGES, rng) + ("validation",)
    labels = _labels(bundle, names) if names else None
    if not len(inputs):
        size = bundle.image_size
        inputs = rng.uniform(0, 255, (RANDOM_IMAGES, size, size, 3)).astype(np.float32)
        source = "random (the bundle's images are gone)"
    calibration = None
    if quantization == "full":
        calibration, _ = _images(bundle, "train", CALIBRATION_IMAGES, rng)
        if not len(calibration):
            raise DefectTFError(f"--int8 full calibrates on the training images, and none of them is left in "
                                f"{bundle.metadata.data_dir}; restore them, or use --int8 dynamic")

    graph = probability_model(bundle)
    reference = _predict(graph.predict_on_batch, inputs)
    what = f"{export.name}" + ("" if quantization == "none" else f" (int8, {quantization})")
    log(f"exporting {bundle.path} ({bundle.metadata.backbone or 'a model'}, {bundle.image_size} px, "
        f"{bundle.metadata.task}) to {what}; parity on {len(inputs)} {source} images")
    with output_folder.locked(bundle.path.parent, "--model"):
        started = time.time()
        staging = Path(tempfile.mkdtemp(dir=bundle.path, prefix=".export-"))
        try:
            written = staging / export.file
            importlib.import_module(export.writer).write(graph, written, quantization, calibration)
            forward, input_name = _run_export(export, written, bundle)
            exported = _predict(forward, inputs)
            measured = {**parity.measure(reference, exported, bundle.metadata, labels), "source": source}
            missed = parity.problems(measured, quantization)
            log(f"wrote {export.file} ({describe_size(_size(written))}) in {time.time() - started:.0f} s; "
                + parity.describe(measured, export.name))
            if missed and not accept_drop:
                raise DefectTFError(f"the {what} export misses its parity goal: {'; '.join(missed)}. It was not kept; "
                                    "--accept-drop keeps it anyway")
            final = bundle.path / export.file
            if final.is_dir():
                shutil.rmtree(final)
            os.replace(written, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        record = ExportRecord(file=export.file, runtime=export.runtime, quantization=quantization,
                              input_name=input_name, parity=measured,
                              exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              versions=export_versions())
        metadata = bundle.metadata
        metadata.exports[export.name] = record.to_json()
        metadata.checksums[export.file] = sha256_of(final)
        write_metadata(bundle.path, metadata)
    return record


def _size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) if path.is_dir() else \
        path.stat().st_size


def export_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
