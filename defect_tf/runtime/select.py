"""Choosing the runtime for a bundle: an exported model where there is one (ONNX Runtime first, then LiteRT), else
Keras. The choice is said to the user (`Inferencer.describe`)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from defect_tf.bundle.layout import MODEL_FILE, find_bundle, read_metadata, verify_file
from defect_tf.errors import BundleError
from defect_tf.export.formats import FORMATS
from defect_tf.runtime.inferencer import Inferencer

# runtime -> (module, class, the package it needs); "auto" tries them in this order
RUNTIMES = {"onnx": ("defect_tf.runtime.onnx", "OnnxInferencer", "onnxruntime"),
            "litert": ("defect_tf.runtime.litert", "LiteRTInferencer", "ai_edge_litert"),
            "keras": ("defect_tf.runtime.keras", "KerasInferencer", "tensorflow")}


def _export_for(runtime: str) -> str | None:
    return next((name for name, export in FORMATS.items() if export.runtime == runtime), None)


def runtime_of_file(model: str | Path, runtime: str = "auto") -> tuple[Path, str]:
    """(the bundle folder, the runtime) for `--model`: a folder keeps `runtime`; a model file of a bundle (model.keras,
    model.onnx, model.tflite) names its own runtime, and a `runtime` that says otherwise is an error."""
    path = Path(model)
    if not path.is_file():
        return find_bundle(path), runtime
    location = find_bundle(path.parent)
    metadata = read_metadata(location)
    owners = {MODEL_FILE: "keras", **{FORMATS[name].file: FORMATS[name].runtime for name in metadata.exports
                                      if FORMATS[name].runtime in RUNTIMES}}
    if path.name not in owners:
        raise BundleError(f"--model {model}: not a model this tool runs (the bundle's are: {', '.join(owners)})")
    if runtime not in ("auto", owners[path.name]):
        raise BundleError(f"--model {model} is run by {owners[path.name]}, not --runtime {runtime}")
    return location, owners[path.name]


def open_inferencer(model: str | Path, runtime: str = "auto", threads: int | None = None) -> Inferencer:
    """The bundle in `model` ready to label photos with `runtime` ("auto": its exported model if it has one), or the
    model file `model` names."""
    location, runtime = runtime_of_file(model, runtime)
    metadata = read_metadata(location)
    if runtime == "auto":
        runtime = next((name for name in RUNTIMES if name != "keras" and _export_for(name) in metadata.exports
                        and importlib.util.find_spec(RUNTIMES[name][2])), "keras")
    if runtime not in RUNTIMES:
        raise BundleError(f"unknown runtime {runtime!r}; choose one of: auto, {', '.join(RUNTIMES)}")
    module, class_name, package = RUNTIMES[runtime]
    if runtime == "keras":
        model_file = location / MODEL_FILE
    else:
        record = metadata.export(_export_for(runtime))
        if record is None:
            raise BundleError(f"{location} holds no {runtime} model; make one with: python export.py --model "
                              f"{model} --format {_export_for(runtime)}")
        model_file = verify_file(location, metadata, record.file)
    if importlib.util.find_spec(package) is None:
        raise BundleError(f"the {runtime} runtime needs the package {package}: pip install -r requirements.txt")
    return getattr(importlib.import_module(module), class_name)(location, metadata, model_file, threads)
