"""DRAEM's two networks, sized by a base width and a depth: a reconstructive encoder-decoder (no skip connections,
so an anomaly cannot be copied through to the output) that paints synthetic anomalies out, and a discriminative
U-Net that compares the photo with its reconstruction and outlines what differs.

The paper's networks (base widths 128 and 64, about 97 M parameters) train for 700 epochs on a GPU; the
defaults here (docs/findings.md) are what 2 CPU cores train on a few hundred photos within an hour.
"""

from __future__ import annotations

import keras
from keras import layers

MAX_WIDTH_FACTOR = 8  # the widest level has 8 x the base width (the paper's)


def _block(x, width: int, name: str):
    for i in (1, 2):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def _widths(width: int, depth: int) -> list[int]:
    return [width * min(2**level, MAX_WIDTH_FACTOR) for level in range(depth)]


def reconstructive_network(width: int, depth: int) -> keras.Model:
    """Image (0..1, sides multiples of 2^(depth-1)) -> the image with anything unusual painted out."""
    image = keras.Input((None, None, 3), name="image")
    widths, x = _widths(width, depth), image
    for level, channels in enumerate(widths):
        if level:
            x = layers.MaxPooling2D(name=f"encode{level}_pool")(x)
        x = _block(x, channels, f"encode{level}")
    for level in reversed(range(depth - 1)):
        x = layers.UpSampling2D(interpolation="bilinear", name=f"decode{level}_up")(x)
        x = _block(x, widths[level], f"decode{level}")
    reconstruction = layers.Conv2D(3, 3, padding="same", name="reconstruction_out")(x)
    return keras.Model(image, reconstruction, name="reconstructive")


def discriminative_network(width: int, depth: int) -> keras.Model:
    """Image and its reconstruction, stacked (6 channels) -> one logit per pixel: is this pixel anomalous?"""
    pair = keras.Input((None, None, 6), name="pair")
    widths, x, skips = _widths(width, depth), pair, []
    for level, channels in enumerate(widths):
        if level:
            x = layers.MaxPooling2D(name=f"down{level}_pool")(x)
        x = _block(x, channels, f"down{level}")
        skips.append(x)
    for level in reversed(range(depth - 1)):
        x = layers.UpSampling2D(interpolation="bilinear", name=f"up{level}_up")(x)
        x = layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = _block(x, widths[level], f"up{level}")
    logits = layers.Conv2D(1, 3, padding="same", name="mask_out")(x)
    return keras.Model(pair, logits, name="discriminative")


def draem_network(width: int, depth: int) -> keras.Model:
    """Image -> {"reconstruction": the repaired image, "mask": per-pixel anomaly logits}."""
    image = keras.Input((None, None, 3), name="image")
    reconstruction = reconstructive_network(width, depth)(image)
    logits = discriminative_network(width, depth)(layers.Concatenate(name="pair")([reconstruction, image]))
    return keras.Model(image, {"reconstruction": layers.Identity(name="reconstruction")(reconstruction),
                               "mask": layers.Identity(name="mask")(logits)}, name="draem")
