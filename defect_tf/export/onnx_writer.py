"""ONNX: the model's forward pass frozen into a graph of constants, converted by tf2onnx in a process of its own
(`onnx_conversion`), float32 throughout.

Freezing first matters: Keras's own ONNX export leaves tensors a layer computes once (EfficientNet-B0's input
normalisation) as graph inputs that ONNX Runtime then demands. Layers tf2onnx cannot convert (ConvNeXt's grouped
convolutions and exact GELU, bilinear upsampling of sides known only at run time) are replaced by equivalents first
(`graph.onnx_graph`). A model whose input has no fixed sides (an anomaly model's) is exported with none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from defect_tf.errors import DefectTFError
from defect_tf.export.graph import INPUT_NAME, onnx_graph


def write(model: keras.Model, path: Path, quantization: str, calibration: np.ndarray | None) -> None:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model = onnx_graph(model)
    signature = [tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=INPUT_NAME)]  # sides may be None
    forward = tf.function(lambda image: model(image, training=False), input_signature=signature)
    frozen = convert_variables_to_constants_v2(forward.get_concrete_function())
    graph_file = path.with_name(f"{path.name}.graph.pb")
    graph_file.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    try:
        command = [sys.executable, "-m", "defect_tf.export.onnx_conversion", str(graph_file), str(path),
                   "--inputs", *[t.name for t in frozen.inputs], "--outputs", *[t.name for t in frozen.outputs]]
        result = subprocess.run(command, capture_output=True, text=True)
    finally:
        graph_file.unlink(missing_ok=True)
    if result.returncode < 0:
        raise DefectTFError(f"tf2onnx's conversion was stopped by signal {-result.returncode} (out of memory, if it "
                            "was 9: ConvNeXt-Tiny needs about 7 GB)")
    if result.returncode != 0 or not path.is_file():
        last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise DefectTFError(f"tf2onnx could not convert the model: {last}")
