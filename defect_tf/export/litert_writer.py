"""LiteRT: built-in operations only (a model needing TensorFlow's Flex operations would not run in LiteRT's own
runtime); int8 as dynamic-range (weights) or full-integer (weights and activations, calibrated on images of the
training split), inputs and outputs staying float32."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def converter_settings(quantization: str, calibration: np.ndarray | None) -> dict:
    """The TFLite converter's settings for a quantization ("none", "dynamic", "full")."""
    operations = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantization == "full" else tf.lite.OpsSet.TFLITE_BUILTINS]
    settings = {"target_spec": {"supported_ops": operations}}
    if quantization != "none":
        settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "full":
        def representative():
            for image in calibration:
                yield [image[None].astype(np.float32)]

        settings["representative_dataset"] = representative
    return settings


def write(model: keras.Model, path: Path, quantization: str, calibration: np.ndarray | None) -> None:
    model.export(str(path), format="litert", verbose=False, **converter_settings(quantization, calibration))
