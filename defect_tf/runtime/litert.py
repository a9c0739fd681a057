"""The LiteRT inferencer (`ai_edge_litert`, LiteRT's own runtime: built-in operations only, no TensorFlow)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.quiet import native_stderr_held_back
from defect_tf.runtime.inferencer import Inferencer


class LiteRTInferencer(Inferencer):
    runtime = "LiteRT"

    def __init__(self, location: Path, metadata: BundleMetadata, model_file: Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(location, metadata, model_file)
        with native_stderr_held_back():  # its C++ start-up line ("Created TensorFlow Lite XNNPACK delegate")
            self.interpreter = Interpreter(model_path=str(model_file), num_threads=threads or os.cpu_count() or 1)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_name = self.input["name"]
        self.batch_size = None

    def forward(self, batch: np.ndarray) -> np.ndarray:
        if self.batch_size != len(batch):  # the interpreter's tensors are sized for one batch size at a time
            self.interpreter.resize_tensor_input(self.input["index"], list(batch.shape))
            with native_stderr_held_back():
                self.interpreter.allocate_tensors()
            self.batch_size = len(batch)
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        probabilities = self.interpreter.get_tensor(self.output["index"])
        return np.asarray(probabilities, dtype=np.float64).reshape(len(batch), -1)
