"""Exporting an anomaly localiser: its network (PatchCore's feature model, DRAEM's networks up to the mask's
logits) written to ONNX with free height and width (photos keep their aspect ratio), into the bundle folder under
a temporary name and renamed once its maps match Keras's on the localiser's own test photos; recorded in
bundle.json with its SHA-256. The NumPy around the network (anomaly/*/maps.py) is shared by both runtimes, so the
network is all that is compared."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from defect_tf.anomaly.images import model_input, read_photo, working_size
from defect_tf.anomaly.regions import defect_mask
from defect_tf.anomaly.runtimes import EXPORT_FILE, EXPORT_FORMAT, maps_class, onnx_forward
from defect_tf.anomaly.store import Localizer, load_localizer, write_localizer_metadata
from defect_tf.bundle.layout import sha256_of
from defect_tf.bundle.metadata import ExportRecord
from defect_tf.errors import DefectTFError, ImageError
from defect_tf.export import onnx_writer
from defect_tf.export.exporter import export_versions
from defect_tf.export.graph import INPUT_NAME
from defect_tf.io import output_folder
from defect_tf.io.untrusted import describe_size

PARITY_PHOTOS = 24  # test (else validation) photos compared at most
RANDOM_SHAPES = ((1, 1), (2, 3), (3, 2))  # aspect ratios of the inputs compared when the localiser's photos are gone
MAX_RELATIVE_DIFFERENCE = 1e-4  # the largest map difference accepted, as a share of the map's range on the photo


def _photos(localizer: Localizer, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
    """Model inputs of up to PARITY_PHOTOS of the localiser's test (else validation) photos that still exist."""
    metadata = localizer.metadata
    for part, source in (("test", "test"), ("val", "validation")):
        names = [name for name in metadata.split.get(part, []) if (Path(metadata.data_dir) / name).is_file()]
        if len(names) > PARITY_PHOTOS:
            names = sorted(rng.choice(names, PARITY_PHOTOS, replace=False))
        inputs = []
        for name in names:
            try:
                inputs.append(model_input(read_photo(Path(metadata.data_dir) / name), metadata.image_size))
            except ImageError:
                continue
        if inputs:
            return inputs, source
    return ([rng.uniform(0, 255, (*working_size(h, w, metadata.image_size), 3)).astype(np.float32)
             for h, w in RANDOM_SHAPES], "random (the localiser's photos are gone)")


def measure(reference: list[tuple], exported: list[tuple], localizer: Localizer) -> dict:
    """How closely the exported network's maps match Keras's (each photo's `raw_maps`): the largest difference
    (absolute, and as a share of the map's range on its photo), photos whose decision changes, and the share of
    outline pixels that change."""
    model, metadata = localizer.model, localizer.metadata
    largest = relative = 0.0
    changed = pixels = total = 0
    for keras_maps, export_maps in zip(reference, exported):
        keras_map, export_map = keras_maps[0], export_maps[0]
        difference = float(np.max(np.abs(keras_map - export_map)))
        largest = max(largest, difference)
        relative = max(relative, difference / max(float(np.ptp(keras_map)), 1e-12))
        changed += (model.raw_score(keras_maps) >= metadata.image_threshold) != \
            (model.raw_score(export_maps) >= metadata.image_threshold)
        pixels += int(np.sum(defect_mask(keras_map, metadata.pixel_threshold)
                             != defect_mask(export_map, metadata.pixel_threshold)))
        total += keras_map.size
    return {"images": len(reference), "max_abs_difference": largest, "max_relative_difference": relative,
            "decisions_changed": int(changed), "outline_pixels_changed": pixels / max(total, 1)}


def describe(parity: dict) -> str:
    return (f"parity on {parity['images']} {parity['source']} photos: max |map_onnx - map_keras| "
            f"{parity['max_abs_difference']:.2g} ({parity['max_relative_difference']:.2g} of a map's range), "
            f"{parity['decisions_changed']} decision(s) changed, {100 * parity['outline_pixels_changed']:.3g}% of "
            "outline pixels changed")


def export_localizer(model: str | Path, format_name: str = EXPORT_FORMAT, accept_drop: bool = False,
                     log=print) -> ExportRecord:
    """Export the localiser in `model` to ONNX, prove its maps match Keras's, and record it in bundle.json."""
    if format_name != EXPORT_FORMAT:
        raise DefectTFError(f"an anomaly localiser exports to --format {EXPORT_FORMAT} only (its input keeps each "
                            f"photo's aspect ratio, so its network takes any height and width), not {format_name}")
    localizer = load_localizer(model, runtime="keras")
    location, metadata = localizer.path, localizer.metadata
    inputs, source = _photos(localizer, np.random.default_rng(0))
    reference = [localizer.model.raw_maps(photo) for photo in inputs]
    log(f"exporting the {metadata.model} localiser in {location} to {EXPORT_FORMAT}; parity on {len(inputs)} "
        f"{source} photos")
    with output_folder.locked(location.parent, "--model"):
        started = time.time()
        staging = Path(tempfile.mkdtemp(dir=location, prefix=".export-"))
        try:
            written = staging / EXPORT_FILE
            onnx_writer.write(localizer.model.export_network(), written, "none", None)
            forward, input_name = onnx_forward(written)
            maps = maps_class(metadata.model).exported(location, metadata.image_size, metadata.settings, forward)
            measured = {**measure(reference, [maps.raw_maps(photo) for photo in inputs], localizer), "source": source}
            log(f"wrote {EXPORT_FILE} ({describe_size(written.stat().st_size)}) in {time.time() - started:.0f} s; "
                + describe(measured))
            missed = problems(measured)
            if missed and not accept_drop:
                raise DefectTFError(f"the ONNX export misses its parity goal: {'; '.join(missed)}. It was not kept; "
                                    "--accept-drop keeps it anyway")
            final = location / EXPORT_FILE
            os.replace(written, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        record = ExportRecord(file=EXPORT_FILE, runtime="onnx", input_name=input_name or INPUT_NAME, parity=measured,
                              input_rule=metadata.input_rule,
                              exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              versions=export_versions())
        metadata.exports[EXPORT_FORMAT] = record.to_json()
        metadata.checksums[EXPORT_FILE] = sha256_of(final)
        write_localizer_metadata(location, metadata)
    return record


def problems(parity: dict) -> list[str]:
    """Where a parity misses its goal: no decision changed, and every map within MAX_RELATIVE_DIFFERENCE of its
    range."""
    missed = []
    if parity["max_relative_difference"] > MAX_RELATIVE_DIFFERENCE:
        missed.append(f"maps differ by up to {parity['max_relative_difference']:.2g} of their range (the goal: "
                      f"{MAX_RELATIVE_DIFFERENCE:g})")
    if parity["decisions_changed"]:
        missed.append(f"{parity['decisions_changed']} photo(s) change their decision")
    return missed
