import re

import keras
import numpy as np
import pytest

from defect_tf.explain.heatmaps import CAM_METHODS
from defect_tf.models.registry import BACKBONES, get_backbone
from defect_tf.models.small_cnn import small_cnn


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_and_has_its_heatmap_layer_and_method(name):
    backbone = get_backbone(name)
    model = backbone.constructor(include_top=False, weights=None, input_shape=(64, 64, 3))
    features = model(np.zeros((1, 64, 64, 3), "float32"))
    assert len(features.shape) == 4
    cam_layer = model.get_layer(backbone.cam_layer) if backbone.cam_layer else model.layers[-1]
    assert len(cam_layer.output.shape) == 4  # a convolutional map
    assert backbone.cam_method in CAM_METHODS


def test_unknown_backbone_lists_the_known_ones():
    known = ", ".join(sorted(BACKBONES))  # every registered name, whatever the registry holds
    with pytest.raises(ValueError, match=re.escape(f"unknown backbone 'resnet9'; choose one of: {known}")):
        get_backbone("resnet9")


def test_small_cnn_keeps_an_eighth_of_the_resolution_and_scales_pixels_itself():
    model = small_cnn(input_shape=(64, 64, 3))
    assert tuple(model.output.shape) == (None, 8, 8, 256)
    assert isinstance(model.get_layer("rescale"), keras.layers.Rescaling)
    with pytest.raises(ValueError, match="no pretrained weights"):
        small_cnn(weights="imagenet")


def test_small_cnn_hires_turns_4x4_patches_into_channels_and_ends_at_an_eighth_of_the_side():
    model = get_backbone("small_cnn_hires").constructor(input_shape=(128, 128, 3))
    assert tuple(model.get_layer("stem_relu").output.shape) == (None, 32, 32, 32)
    assert tuple(model.output.shape) == (None, 16, 16, 64)
