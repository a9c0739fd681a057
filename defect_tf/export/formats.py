"""The export formats, one table (as Ultralytics' exporter): each format's file in the bundle, the runtime that
runs it, the quantizations it takes, and its writer. Imports no TensorFlow: the runtime reads it to choose."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    name: str
    file: str  # in the bundle folder
    runtime: str  # the key of runtime/select.py's RUNTIMES that runs it ("tensorflow": TensorFlow itself)
    quantizations: tuple[str, ...]  # "none" first; "dynamic": int8 weights; "full": int8 weights and activations
    writer: str  # the module of defect_tf.export with `write(model, path, quantization, calibration)`
    description: str


FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat("onnx", "model.onnx", "onnx", ("none",), "defect_tf.export.onnx_writer",
                         "ONNX, for ONNX Runtime (any language, no TensorFlow)"),
    "litert": ExportFormat("litert", "model.tflite", "litert", ("none", "dynamic", "full"),
                           "defect_tf.export.litert_writer",
                           "LiteRT (TensorFlow Lite), built-in operations only: edge boxes and phones"),
    "saved_model": ExportFormat("saved_model", "saved_model", "tensorflow", ("none",),
                                "defect_tf.export.saved_model_writer", "TensorFlow SavedModel, for TF Serving"),
}
QUANTIZATIONS = ("none", "dynamic", "full")


def get_format(name: str) -> ExportFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown export format {name!r}; choose one of: {', '.join(FORMATS)}") from None
