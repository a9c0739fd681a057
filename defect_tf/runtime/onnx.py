"""The ONNX Runtime inferencer: threads set explicitly, spinning off (on a busy CPU a spinning thread pool made one
image 2.3x slower here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.runtime.inferencer import Inferencer


def session_options(threads: int | None = None):
    """ONNX Runtime's settings for a predictable CPU: `threads` intra-op threads (default: every core), no
    spinning, one graph at a time."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OnnxInferencer(Inferencer):
    runtime = "ONNX Runtime"

    def __init__(self, location: Path, metadata: BundleMetadata, model_file: Path, threads: int | None = None):
        import onnxruntime

        super().__init__(location, metadata, model_file)
        self.session = onnxruntime.InferenceSession(str(model_file), session_options(threads),
                                                    providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, batch: np.ndarray) -> np.ndarray:
        (probabilities,) = self.session.run(None, {self.input_name: batch})
        return np.asarray(probabilities, dtype=np.float64).reshape(len(batch), -1)
