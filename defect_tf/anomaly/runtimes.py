"""Running a localiser: its Keras model, or its network exported to ONNX (`python export.py --model
outputs/localizer`) with ONNX Runtime and no TensorFlow. Pre- and post-processing are the same NumPy code for both
(the model's `AnomalyMaps`); only the forward pass differs. "auto" takes the export where there is one."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np

from defect_tf.anomaly.base import AnomalyMaps, Forward
from defect_tf.anomaly.metadata import LocalizerMetadata
from defect_tf.anomaly.registry import ANOMALY_MODELS, get_anomaly_model
from defect_tf.bundle.layout import verify_file
from defect_tf.errors import BundleError

EXPORT_FORMAT = "onnx"  # the one format a localiser exports to: its inputs keep each photo's aspect ratio, so the
# network takes any height and width, which ONNX graphs do and LiteRT's fixed shapes do not
EXPORT_FILE = "network.onnx"


def maps_class(model: str) -> type[AnomalyMaps]:
    """The NumPy side of the anomaly model registered as `model` (what its exported network runs with)."""
    entry = ANOMALY_MODELS[model]
    return getattr(importlib.import_module(entry.maps_module), entry.maps_cls)


def choose_runtime(metadata: LocalizerMetadata, runtime: str = "auto") -> str:
    """What runs the network, onnx or keras, for `--runtime` (auto, onnx, keras; litert, a classifier's runtime,
    means auto here): auto takes the ONNX export when the bundle has one and ONNX Runtime is installed."""
    exported = EXPORT_FORMAT in metadata.exports
    if runtime == "onnx":
        if not exported:
            raise BundleError("the localiser has no ONNX export; make one with: python export.py --model "
                              "LOCALIZER_FOLDER --format onnx")
        return "onnx"
    if runtime == "keras" or not exported or importlib.util.find_spec("onnxruntime") is None:
        return "keras"
    return "onnx"


def onnx_forward(path: Path, threads: int | None = None) -> tuple[Forward, str]:
    """(the forward pass of an exported network with ONNX Runtime, the name of its input)."""
    import onnxruntime

    from defect_tf.runtime.onnx import session_options

    session = onnxruntime.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def forward(batch: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {input_name: np.ascontiguousarray(batch, dtype=np.float32)})

    return forward, input_name


def open_maps(location: Path, metadata: LocalizerMetadata, runtime: str = "auto",
              threads: int | None = None) -> tuple[AnomalyMaps, str]:
    """(the localiser's model ready to map photos with `runtime`, a description of what runs it). Its files are
    checked against their checksums first."""
    chosen = choose_runtime(metadata, runtime)
    if chosen == "keras":
        from defect_tf.quiet import quiet_tensorflow_start

        quiet_tensorflow_start()
        model_class = get_anomaly_model(metadata.model)
        names = (*model_class.files, *model_class.bundle_files(metadata.settings))
        missing = [name for name in names if name not in metadata.checksums]
        if missing:
            raise BundleError(f"{location}: no checksum for {', '.join(missing)}; train the localiser again")
        for name in names:
            verify_file(location, metadata, name)
        return (model_class.load(location, metadata.image_size, metadata.settings),
                f"Keras ({location / model_class.files[0]})")
    maps = maps_class(metadata.model)
    for name in (*maps.bundle_files(metadata.settings), EXPORT_FILE):
        if name not in metadata.checksums:
            raise BundleError(f"{location}: no checksum for {name}; export the localiser again")
        verify_file(location, metadata, name)
    forward, _ = onnx_forward(location / EXPORT_FILE, threads)
    return (maps.exported(location, metadata.image_size, metadata.settings, forward),
            f"ONNX Runtime ({location / EXPORT_FILE})")
