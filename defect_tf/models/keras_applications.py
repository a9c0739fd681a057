"""Keras's own ImageNet networks, each built to take images with values in [0, 255] like every backbone here.

ConvNeXt, MobileNetV3 and EfficientNet scale their input inside the network; ResNet-50 expects Caffe-style
input (BGR, ImageNet mean subtracted), so it gets that as its first layer.
"""

from __future__ import annotations

import keras
from keras import ops

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="defect_tf")
class CaffePreprocessing(keras.layers.Layer):
    """RGB in [0, 255] -> BGR minus the ImageNet mean: what Keras's ResNet weights were trained on."""

    def call(self, images):
        return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=images.dtype)


def resnet50(include_top: bool = False, weights=None, input_shape=None) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    preprocessed = CaffePreprocessing(name="caffe_preprocessing")(inputs)
    return keras.applications.ResNet50(include_top=include_top, weights=weights, input_tensor=preprocessed)


def mobilenet_v3_small(include_top: bool = False, weights=None, input_shape=None) -> keras.Model:
    return keras.applications.MobileNetV3Small(input_shape=input_shape, include_top=include_top, weights=weights)


def mobilenet_v3_large(include_top: bool = False, weights=None, input_shape=None) -> keras.Model:
    return keras.applications.MobileNetV3Large(input_shape=input_shape, include_top=include_top, weights=weights)
