"""ONNX: the model's forward pass frozen into a graph of constants, converted by tf2onnx, float32 throughout.

Freezing first matters: Keras's own ONNX export leaves tensors a layer computes once (EfficientNet-B0's input
normalisation) as graph inputs that ONNX Runtime then demands. Layers tf2onnx cannot convert (ConvNeXt's grouped
convolutions and exact GELU, bilinear upsampling of sides known only at run time) are replaced by equivalents first
(`graph.onnx_graph`). A model whose input has no fixed sides (an anomaly model's) is exported with none."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import keras
import numpy as np

from defect_tf.export.graph import INPUT_NAME, onnx_graph

OPSET = 17  # ONNX Runtime 1.17 and later run it


def write(model: keras.Model, path: Path, quantization: str, calibration: np.ndarray | None) -> None:
    import tensorflow as tf
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model = onnx_graph(model)
    signature = [tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=INPUT_NAME)]  # sides may be None
    forward = tf.function(lambda image: model(image, training=False), input_signature=signature)
    frozen = convert_variables_to_constants_v2(forward.get_concrete_function())
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's notices about NumPy 2, which Keras's patch answers
        patch_tf2onnx()
        tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
                                       output_names=[t.name for t in frozen.outputs], opset=OPSET,
                                       output_path=str(path))
