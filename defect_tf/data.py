"""The tf.data input pipeline: parallel decode and resize, cache, shuffle, batch, augment, prefetch.

`load_image` is the one decoding path, used by training, evaluation and inference alike.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from defect_tf.errors import ImageError

AUTOTUNE = tf.data.AUTOTUNE


def load_image(path: tf.Tensor | str, image_size: int) -> tf.Tensor:
    """Read and decode a JPEG / PNG / BMP / GIF file to `image_size`² RGB, float32 values in [0, 255].

    Grayscale becomes three equal channels; an alpha channel is dropped.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def read_image(path: str, image_size: int) -> np.ndarray:
    """Decode one file exactly as training does; an unreadable file is an ImageError naming it."""
    try:
        return load_image(str(path), image_size).numpy()
    except (tf.errors.OpError, ValueError) as error:
        reason = getattr(error, "message", str(error)).strip().splitlines()[0]
        reason = re.sub(r"^\{\{.*?\}\}\s*", "", reason)  # TensorFlow's "{{function_node ...}}" prefix
        raise ImageError(f"{path}: cannot read image ({reason})") from None


def make_dataset(paths: list[str], labels: np.ndarray, image_size: int, batch_size: int, *,
                 training: bool = False, augment=None, seed: int = 0) -> tf.data.Dataset:
    """Batches of (images, labels). Training batches are reshuffled every epoch and augmented in-graph.

    Decoded images are cached in memory as uint8 (a quarter of float32's size), so files are read
    and decoded once; shuffling and augmentation happen after the cache and so differ every epoch.
    The training dataset repeats forever (pass `steps_per_epoch(...)` to `fit`): Keras then keeps
    one iterator for the whole run, instead of destroying one per epoch, which can stall for tens
    of seconds while TensorFlow waits for the old iterator's prefetch threads.
    """
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels.astype(np.float32)))
    dataset = dataset.map(lambda path, label: (tf.cast(tf.round(load_image(path, image_size)), tf.uint8), label),
                          num_parallel_calls=AUTOTUNE)
    dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if training:
        dataset = dataset.repeat()
    dataset = dataset.map(lambda images, label: (tf.cast(images, tf.float32), label), num_parallel_calls=AUTOTUNE)
    if training and augment is not None:
        dataset = dataset.map(lambda images, label: (augment(images, training=True), label),
                              num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Batches in one pass over `n_images` (the last one may be smaller)."""
    return max(1, math.ceil(n_images / batch_size))
