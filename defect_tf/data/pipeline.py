"""The tf.data input pipeline: parallel decode and resize, cache, shuffle, batch, augment, prefetch."""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

from defect_tf.data.cache import CachePlan
from defect_tf.data.images import exif_orientations, load_image
from defect_tf.data.shards import Shards

PARALLEL_CALLS = os.cpu_count() or 1  # files decode on every core
PREFETCH_BATCHES = 2  # the pipeline is >10x faster than a training step: two batches ahead is plenty


def fixed_tuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Turn tf.data's autotuner off (parallelism and prefetch depth are fixed numbers instead).

    The autotuner runs a background thread that every finished iterator waits for in its destructor
    (`RootDataset::Iterator::~Iterator`): on 2 CPU cores that wait measured up to 33 s at the end of a
    `fit` and of each validation pass, with the CPU idle. Fixed settings never wait.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def decoded_images(paths: list[str], image_size: int) -> tf.data.Dataset:
    """Each file decoded, turned upright and resized as the model sees it, rounded to uint8: the pixels training
    caches, and those `defect-tf prepare` writes into shards (data/shards.py), so both train on the same."""
    def decode(path, orientation):
        return tf.cast(tf.round(load_image(path, image_size, orientation)), tf.uint8)

    dataset = tf.data.Dataset.from_tensor_slices((paths, exif_orientations(paths)))
    return dataset.map(decode, num_parallel_calls=PARALLEL_CALLS)


def make_dataset(paths: list[str], labels: np.ndarray, image_size: int, batch_size: int, *,
                 training: bool = False, augment=None, mixup=None, groups: np.ndarray | None = None,
                 seed: int = 0, cache: CachePlan | None = None, name: str = "images",
                 shards: Shards | None = None) -> tf.data.Dataset:
    """Batches of (images, labels). Training batches are reshuffled every epoch and augmented in-graph.

    Decoded images are cached as uint8 (a quarter of float32's size), in memory or in files named after `name`
    as `cache` says (data/cache.py; default: memory), so files are read and decoded once; shuffling and
    augmentation happen after the cache and so differ every epoch. A disk cache bounds the shuffle buffer.
    `shards` (data/shards.py): the images are read from prepared shards instead of decoded from their files.
    The training dataset repeats forever (pass `steps_per_epoch(...)` to `fit`), so Keras keeps one
    iterator per `fit`; with `fixed_tuning` no iterator's end waits on the autotuner.
    `groups` (training only, see sampling.py): draw each group equally often instead of each image once;
    `mixup` (e.g. augmentation.MixUp): blend each augmented batch's images and labels.
    """
    cache = cache or CachePlan("memory", None, 0, "")

    def images_of(rows: np.ndarray, stream: str) -> tf.data.Dataset:
        chosen = [paths[i] for i in rows]
        values = tf.constant(labels[rows].astype(np.float32))
        if shards is None:  # in the files' order
            positions = tf.data.Dataset.range(len(chosen))
            dataset = tf.data.Dataset.zip(decoded_images(chosen, image_size), positions)
        else:  # in the shards' order: the same as the files' for the rows of one split
            dataset = shards.images(chosen)
        dataset = dataset.map(lambda image, position: (image, tf.gather(values, position)))
        return dataset if cache.kind == "shards" else dataset.cache(cache.file(stream))

    def shuffled(dataset: tf.data.Dataset, count: int, stream_seed: int) -> tf.data.Dataset:
        return dataset.shuffle(cache.shuffle_buffer(count, image_size), seed=stream_seed,
                               reshuffle_each_iteration=True)

    if training and groups is not None:
        members = [np.flatnonzero(groups == group) for group in np.unique(groups)]
        streams = [shuffled(images_of(rows, f"{name}-group{i}"), len(rows), seed + i).repeat()
                   for i, rows in enumerate(members)]
        dataset = tf.data.Dataset.sample_from_datasets(streams, seed=seed).batch(batch_size)
    else:
        dataset = images_of(np.arange(len(paths)), name)
        if training:
            dataset = shuffled(dataset, len(paths), seed)
        dataset = dataset.batch(batch_size)
        if training:
            dataset = dataset.repeat()

    def to_model_input(images, label):
        images = tf.cast(images, tf.float32)
        # One batch at a time (no parallel calls): the augmentation layers draw from one random state,
        # so parallel calls would hand the draws to batches in thread order and a seed would not repeat.
        if training and augment is not None:
            images = augment(images, training=True)
        if training and mixup is not None:
            images, label = mixup(images, label)
        return images, label

    return fixed_tuning(dataset.map(to_model_input).prefetch(PREFETCH_BATCHES))


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Batches in one pass over `n_images` (the last one may be smaller)."""
    return max(1, math.ceil(n_images / batch_size))
