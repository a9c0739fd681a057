"""Small VGG-style CNNs trained from scratch: quick to learn on a CPU, no pretrained weights."""

from __future__ import annotations

import keras


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
