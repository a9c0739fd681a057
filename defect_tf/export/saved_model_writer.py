"""SavedModel: TensorFlow's own format (TF Serving), the forward pass under the signature `serve`."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def write(model: keras.Model, path: Path, quantization: str, calibration: np.ndarray | None) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


def run(path: Path):
    """A loaded SavedModel as a function of a batch (probabilities as NumPy)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return lambda batch: loaded.serve(tf.constant(batch)).numpy()
