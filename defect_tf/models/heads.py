"""Heads by name: what turns a backbone's feature map into one logit per attribute (or class).

`linear`: global pooling -> dropout -> dense logits. `mlp`: pooling -> Dense 512 + ReLU -> dropout ->
dense logits. Either may start with spatial attention (Woo et al., 2018, CBAM's spatial half): each
position's channel mean and max -> a 7x7 convolution -> a sigmoid gate that scales the feature map.
Both are Keras layers with `get_config`, so a saved bundle rebuilds them without running Python code.
"""

from __future__ import annotations

import keras
from keras import ops

HEADS = ("linear", "mlp")
ATTENTION = ("none", "spatial")
POOLING = ("avg", "max")
DEFAULT_HEAD = "linear"
DEFAULT_ATTENTION = "none"
DEFAULT_POOLING = "avg"
DROPOUT = 0.3  # before the output layer
MLP_UNITS = 512


@keras.saving.register_keras_serializable(package="defect_tf")
class SpatialAttention(keras.layers.Layer):
    """Scale every position of a feature map by a learnt gate in (0, 1) computed from its channel mean and max."""

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.gate = keras.layers.Conv2D(1, kernel_size, padding="same", activation="sigmoid", name="gate",
                                        dtype=self.dtype_policy)

    def build(self, input_shape):
        self.gate.build((*input_shape[:-1], 2))

    def call(self, features):
        summary = ops.concatenate([ops.mean(features, axis=-1, keepdims=True),
                                   ops.max(features, axis=-1, keepdims=True)], axis=-1)
        return features * self.gate(summary)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="defect_tf")
class ClassifierHead(keras.layers.Layer):
    """Feature map -> [spatial attention] -> global pooling -> [Dense + ReLU] -> dropout -> logits (always float32,
    also under mixed precision, so the loss and the probabilities are computed in full precision)."""

    def __init__(self, n_outputs: int, head: str = DEFAULT_HEAD, attention: str = DEFAULT_ATTENTION,
                 pooling: str = DEFAULT_POOLING, dropout: float = DROPOUT, **kwargs):
        super().__init__(**kwargs)
        for name, value, allowed in (("head", head, HEADS), ("attention", attention, ATTENTION),
                                     ("pooling", pooling, POOLING)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        self.n_outputs, self.head, self.attention, self.pooling, self.dropout = n_outputs, head, attention, pooling, dropout
        policy = self.dtype_policy
        self.spatial = SpatialAttention(name="spatial_attention", dtype=policy) if attention == "spatial" else None
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        self.pool = pool(name="pool", dtype=policy)
        self.hidden = keras.layers.Dense(MLP_UNITS, activation="relu", name="hidden", dtype=policy) \
            if head == "mlp" else None
        self.drop = keras.layers.Dropout(dropout, name="dropout", dtype=policy)
        self.logits = keras.layers.Dense(n_outputs, name="logits", dtype="float32")

    def build(self, input_shape):
        if self.spatial is not None:
            self.spatial.build(input_shape)
        width = input_shape[-1]
        if self.hidden is not None:
            self.hidden.build((input_shape[0], width))
            width = MLP_UNITS
        self.logits.build((input_shape[0], width))

    def pooled(self, features, training=None):
        """The pooled feature vector the hidden and logit layers read (after attention)."""
        if self.spatial is not None:
            features = self.spatial(features)
        return self.pool(features)

    def call(self, features, training=None):
        x = self.pooled(features)
        if self.hidden is not None:
            x = self.hidden(x)
        return self.logits(self.drop(x, training=training))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_outputs)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_outputs": self.n_outputs, "head": self.head, "attention": self.attention,
                "pooling": self.pooling, "dropout": self.dropout}
