"""Running a trained model: probabilities for a dataset, and detections for image files."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from defect_tf.bundle import Bundle
from defect_tf.data import read_image
from defect_tf.errors import ImageError


def predict_probabilities(model: keras.Model, inputs, batch_size: int = 32) -> np.ndarray:
    """Sigmoid probabilities per attribute for a batched dataset or an array of images."""
    logits = model.predict(inputs, batch_size=None if isinstance(inputs, tf.data.Dataset) else batch_size, verbose=0)
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


@dataclass
class Prediction:
    image: str
    probabilities: dict[str, float]
    detected: list[str]

    def as_dict(self) -> dict:
        return {"image": self.image, "probabilities": self.probabilities, "detected": self.detected}


class Predictor:
    """A loaded bundle ready to label images: decode, one batched forward pass, calibrated thresholds."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle

    def predict(self, paths: list[str]) -> tuple[list[Prediction], list[ImageError]]:
        """Predict every readable image in one batch; unreadable ones come back as errors, not exceptions."""
        images, readable, errors = [], [], []
        for path in paths:
            try:
                images.append(read_image(path, self.bundle.image_size))
                readable.append(str(path))
            except ImageError as error:
                errors.append(error)
        if not images:
            return [], errors
        probabilities = predict_probabilities(self.bundle.model, np.stack(images))
        thresholds, names = self.bundle.thresholds, self.bundle.attributes
        predictions = [
            Prediction(path, {name: float(p) for name, p in zip(names, row)},
                       [name for name, p, t in zip(names, row, thresholds) if p >= t])
            for path, row in zip(readable, probabilities)
        ]
        return predictions, errors
