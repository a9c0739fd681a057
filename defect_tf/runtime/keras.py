"""The Keras inferencer: the bundle's own model with TensorFlow (imported only when this runtime is chosen), called
with `predict_on_batch` (Keras's `predict` costs about 130 ms of overhead per call)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.decisions import RULES
from defect_tf.runtime.inferencer import Inferencer


class KerasInferencer(Inferencer):
    runtime = "Keras"

    def __init__(self, location: Path, metadata: BundleMetadata, model_file: Path, threads: int | None = None):
        from defect_tf.quiet import quiet_tensorflow_start

        quiet_tensorflow_start()
        from defect_tf.bundle.store import load_bundle

        super().__init__(location, metadata, model_file)
        self.bundle = load_bundle(location)
        self.metadata = self.bundle.metadata

    def forward(self, batch: np.ndarray) -> np.ndarray:
        logits = np.asarray(self.bundle.model.predict_on_batch(batch))
        return RULES[self.metadata.task].probabilities(logits)
