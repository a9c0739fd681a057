"""The inferencer every runtime shares (as anomalib's `deploy/inferencers/base_inferencer.py`): pre-process
(decode and resize photos, a few at a time in threads), forward (the runtime's own call) and post-process (the
task's decision rule). A runtime subclass supplies `forward` alone."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.errors import ImageError
from defect_tf.runtime.images import model_input
from defect_tf.runtime.predictions import Prediction, label

BATCH_SIZE = 32  # photos per forward pass
DECODING_THREADS = min(4, os.cpu_count() or 1)  # Pillow decodes partly outside Python's lock (1.4x with 2)


class Inferencer(ABC):
    """A bundle ready to label photos with one runtime."""

    runtime: str = ""  # what the user is told runs the model ("ONNX Runtime", "LiteRT", "Keras")

    def __init__(self, location: Path, metadata: BundleMetadata, model_file: Path):
        self.location, self.metadata, self.model_file = location, metadata, model_file
        self._pool = ThreadPoolExecutor(max_workers=DECODING_THREADS)  # decodes the photos of a batch
        self._next = ThreadPoolExecutor(max_workers=1)  # prepares the next batch while the model runs

    def describe(self) -> str:
        return f"{self.runtime} ({self.model_file})"

    def preprocess(self, paths: Iterable[str | Path]) -> tuple[np.ndarray, list[str], list[ImageError]]:
        """The model's inputs for the readable files (decoded in parallel), their names, and the others' errors."""
        def load(path):
            try:
                return model_input(path, self.metadata.image_size)
            except ImageError as error:
                return error

        paths = [str(path) for path in paths]
        loaded = list(self._pool.map(load, paths))
        names = [path for path, item in zip(paths, loaded) if not isinstance(item, ImageError)]
        images = [item for item in loaded if not isinstance(item, ImageError)]
        errors = [item for item in loaded if isinstance(item, ImageError)]
        size = self.metadata.image_size
        batch = np.stack(images) if images else np.zeros((0, size, size, 3), np.float32)
        return batch.astype(np.float32, copy=False), names, errors

    @abstractmethod
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities per attribute (rows: images) for a batch of model inputs (float32, 0-255)."""

    def postprocess(self, names: list[str], probabilities: np.ndarray) -> list[Prediction]:
        return label(names, probabilities, self.metadata)

    def predict_batches(self, paths: list[str | Path],
                        batch_size: int = BATCH_SIZE) -> Iterator[tuple[list[Prediction], list[ImageError]]]:
        """(predictions, errors) per batch of `paths`, the next batch decoding while this one runs."""
        chunks = [paths[start:start + batch_size] for start in range(0, len(paths), batch_size)]
        if not chunks:
            return
        pending = self._next.submit(self.preprocess, chunks[0])
        for index in range(len(chunks)):
            batch, names, errors = pending.result()
            if index + 1 < len(chunks):
                pending = self._next.submit(self.preprocess, chunks[index + 1])
            predictions = self.postprocess(names, self.forward(batch)) if len(batch) else []
            yield predictions, errors

    def predict(self, paths: list[str | Path], batch_size: int = BATCH_SIZE) -> tuple[list[Prediction],
                                                                                   list[ImageError]]:
        """Every readable photo's prediction, and an error for each unreadable one."""
        predictions, errors = [], []
        for batch_predictions, batch_errors in self.predict_batches(paths, batch_size):
            predictions += batch_predictions
            errors += batch_errors
        return predictions, errors

    def close(self) -> None:
        self._next.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
