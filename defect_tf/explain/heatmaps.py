"""Class activation maps: where in the photo the model looked for each attribute.

A is a convolutional feature map of the backbone (the registry's `cam_layer`) and G = d logit_k / d A.
Two methods, chosen per backbone by the registry's `cam_method`:
- Grad-CAM (Selvaraju et al., 2017): ReLU(sum_c w_c A_c), w_c the spatial mean of G_c. Good on the
  network's last map when that map is fine enough (small_cnn: 1/4 of the side).
- LayerCAM (Jiang et al., 2021): ReLU(sum_c ReLU(G_c) * A_c), each position weighted by its own
  gradient. It stays faithful on earlier, finer maps of a deep network, where a channel's mean
  gradient does not (EfficientNet-Lite0, docs/how_it_works.md).
All attributes of one image come from one forward and one backward pass: the image is repeated once
per attribute and copy k back-propagates only logit k. The model runs in inference mode, so the
copies do not interact.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import tensorflow as tf

from defect_tf.models.classifier import backbone_of
from defect_tf.models.registry import get_backbone

CAM_METHODS = ("gradcam", "layercam")


class GradCAM:
    """Heatmaps for a classifier built by `build_classifier`; the gradient model is built once.

    `layer` and `method` override the registry's `cam_layer` and `cam_method` (for comparisons).
    """

    def __init__(self, model: keras.Model, backbone_name: str, layer: str | None = None, method: str | None = None):
        backbone = get_backbone(backbone_name)
        self.method = method or backbone.cam_method
        if self.method not in CAM_METHODS:
            raise ValueError(f"unknown heatmap method {self.method!r}; known: {', '.join(CAM_METHODS)}")
        base = backbone_of(model)
        self.layer = layer or backbone.cam_layer or base.layers[-1].name  # None: the backbone's last feature map
        feature_map = base.get_layer(self.layer).output
        both = keras.Model(base.inputs, [feature_map, base.output], name="gradcam_backbone")
        inputs = keras.Input(model.input_shape[1:], name="image")
        conv_map, features = both(inputs)
        x = features
        for layer in model.layers[model.layers.index(base) + 1:]:  # the head
            x = layer(x)
        self.model = keras.Model(inputs, [conv_map, x], name="gradcam")
        self.n_outputs = model.output_shape[-1]
        self._heatmaps = tf.function(self._compute, reduce_retracing=True)

    def _compute(self, image: tf.Tensor, attributes: tf.Tensor) -> tf.Tensor:
        copies = tf.repeat(image[None], tf.shape(attributes)[0], axis=0)
        with tf.GradientTape() as tape:
            conv_map, logits = self.model(copies, training=False)
            chosen = tf.gather(tf.cast(logits, tf.float32), attributes, axis=1, batch_dims=0)
            total = tf.reduce_sum(tf.linalg.diag_part(chosen))  # copy k contributes logit attributes[k]
        gradients = tf.cast(tape.gradient(total, conv_map), tf.float32)
        if self.method == "layercam":
            weights = tf.nn.relu(gradients)
        else:
            weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * tf.cast(conv_map, tf.float32), axis=-1))

    def heatmaps(self, image: np.ndarray, attributes: list[int] | None = None) -> np.ndarray:
        """One heatmap per attribute index (default: all), each scaled to [0, 1] by its own maximum.

        `image` is one preprocessed image (size x size x 3, values in [0, 255]). Returns an array
        (attributes, h, w) at the feature map's resolution; a map with no positive evidence is all zero.
        """
        attributes = list(range(self.n_outputs)) if attributes is None else list(attributes)
        if not attributes:
            return np.zeros((0, *self.model.output_shape[0][1:3]), dtype=np.float32)
        maps = self._heatmaps(tf.convert_to_tensor(image, tf.float32), tf.constant(attributes, tf.int32)).numpy()
        peaks = maps.max(axis=(1, 2), keepdims=True)
        return np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)


def upsample(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """A [0, 1] heatmap resized smoothly to (height, width)."""
    return np.clip(cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Draw a heatmap over an RGB uint8 image at the image's own resolution (JET colours: red = looked here)."""
    height, width = image.shape[:2]
    colours = cv2.applyColorMap(np.uint8(255 * upsample(heatmap, height, width)), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image.astype(np.uint8), 1.0 - alpha, colours, alpha, 0.0)
