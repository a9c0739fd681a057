"""DRAEM's answer around its network, in NumPy (no TensorFlow, so an exported network answers alike): the photo
scaled to 0-1 in; out, the discriminative network's per-pixel probability, smoothed."""

from __future__ import annotations

import numpy as np

from defect_tf.anomaly.base import AnomalyMaps
from defect_tf.anomaly.maps import smooth


class DraemMaps(AnomalyMaps):
    name = "draem"

    def network_input(self, inputs: np.ndarray) -> np.ndarray:
        return (inputs / 255.0).astype(np.float32)[None]

    def map_from(self, outputs: list[np.ndarray], inputs: np.ndarray) -> np.ndarray:
        (logits,) = outputs
        logits = np.asarray(logits, np.float64)[0, ..., 0]
        return smooth(np.exp(-np.logaddexp(0.0, -logits)))  # the sigmoid, finite for any logit
