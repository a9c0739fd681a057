"""The graph an export holds: the bundle's model with its task's activation on top, so the exported model takes
the model's input (RGB 0-255, float32, image_size squared; the backbone's scaling is inside) and returns
probabilities, not logits."""

from __future__ import annotations

import math

import keras
import numpy as np

from defect_tf.bundle.store import Bundle
from defect_tf.decisions import RULES, sigmoid, softmax

ACTIVATIONS = {sigmoid: "sigmoid", softmax: "softmax"}  # a task's probabilities, as Keras names the activation
INPUT_NAME = "image"


def probability_model(bundle: Bundle) -> keras.Model:
    """The bundle's model returning each attribute's (or class's) probability, as the task computes it."""
    size = bundle.image_size
    image = keras.Input((size, size, 3), dtype="float32", name=INPUT_NAME)
    activation = ACTIVATIONS[RULES[bundle.metadata.task].probabilities]
    logits = bundle.model(image)
    if isinstance(logits, (list, tuple)):  # a loaded functional model returns its outputs as saved: a list of one
        (logits,) = logits
    probabilities = keras.layers.Activation(activation, dtype="float32", name="probabilities")(logits)
    return keras.Model(image, probabilities, name=f"{bundle.model.name}_probabilities")


class ErfGelu(keras.layers.Layer):
    """GELU written with erf, which ONNX has: TensorFlow's exact GELU uses erfc, which tf2onnx cannot convert."""

    def call(self, inputs):
        return 0.5 * inputs * (1.0 + keras.ops.erf(inputs / math.sqrt(2.0)))


class DynamicUpSampling2D(keras.layers.Layer):
    """Bilinear upsampling by whole factors of a map whose sides are known only at run time (Keras's UpSampling2D
    needs them when traced): TensorFlow's resize of the same kind (half-pixel centres, no antialiasing)."""

    def __init__(self, size: tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)

    def call(self, inputs):
        import tensorflow as tf

        sides = tf.shape(inputs)[1:3] * tf.constant(self.size, tf.int32)
        return tf.image.resize(inputs, sides, method="bilinear")

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


def _onnx_equivalent(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The same layer (its weights shared), or an equivalent that tf2onnx converts: a convolution with one group per
    channel becomes a depthwise convolution (Keras's TensorFlow backend compiles grouped convolutions with XLA,
    which tf2onnx cannot read), an exact GELU an erf one, a bilinear upsampling one that takes sides known only at
    run time."""
    if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D) \
            and layer.groups > 1 and layer.groups == layer.filters and layer.kernel.shape[2] == 1:
        depthwise = keras.layers.DepthwiseConv2D(layer.kernel_size, layer.strides, layer.padding,
                                                 dilation_rate=layer.dilation_rate, use_bias=layer.use_bias,
                                                 name=f"{layer.name}_as_depthwise")
        depthwise.build((None, None, None, layer.filters))
        kernel = np.transpose(keras.ops.convert_to_numpy(layer.kernel), (0, 1, 3, 2))  # (h, w, 1, C) -> (h, w, C, 1)
        depthwise.set_weights([kernel, *([keras.ops.convert_to_numpy(layer.bias)] if layer.use_bias else [])])
        return depthwise
    if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == "bilinear" \
            and layer.data_format == "channels_last":
        return DynamicUpSampling2D(layer.size, name=f"{layer.name}_dynamic")
    if isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") == "gelu":
        return ErfGelu(name=f"{layer.name}_erf")
    return layer


def onnx_graph(model: keras.Model) -> keras.Model:
    """`model` with the layers tf2onnx cannot convert replaced by equivalents (the others shared, not copied)."""
    return keras.models.clone_model(model, clone_function=_onnx_equivalent, recursive=True)
