"""Training-time augmentation as Keras layers, run inside the tf.data graph on whole batches."""

from __future__ import annotations

import keras

CUTOUT_AREA = (0.01, 0.06)  # fraction of the image one erased patch covers; large patches would hide defects


def build_augmentation(cutout: bool = True, seed: int | None = None) -> keras.Sequential:
    """Random flips (both axes), rotation by up to ±0.2 turn (±72°) and, optionally, Cutout.

    Cutout is Keras's RandomErasing: half of the images get one patch filled with noise.
    Rotations reflect at the borders so no black corners look like defects.
    """
    seeds = [None] * 3 if seed is None else [seed, seed + 1, seed + 2]
    layers = [
        keras.layers.RandomFlip("horizontal_and_vertical", seed=seeds[0]),
        keras.layers.RandomRotation(0.2, fill_mode="reflect", seed=seeds[1]),
    ]
    if cutout:
        layers.append(keras.layers.RandomErasing(factor=(0.5, 0.5), scale=CUTOUT_AREA, value_range=(0, 255),
                                                 seed=seeds[2]))
    return keras.Sequential(layers, name="augmentation")
