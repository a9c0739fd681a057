"""Decoding one image with TensorFlow: upright (EXIF orientation) and resized as the model sees it.

`load_image` is the one decoding path, used by training, evaluation and inference alike; the file is first
checked by `data/image_files.py` (bounded size, pixels and frames).
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf

from defect_tf.data.image_files import (
    JPEG_MAGIC,
    TIFF_MAGIC,
    decode_with_pillow,
    orientation_of,
    read_image_file,
)
from defect_tf.errors import ImageError


def exif_orientations(paths: list[str]) -> np.ndarray:
    """Each file's EXIF orientation (1-8), read from its header only; 1 where it has none or can't be opened.

    TensorFlow's decoders ignore EXIF, so a phone photo taken upright would reach the model sideways.
    """
    return np.asarray([orientation_of(path) for path in paths], np.int32)


def _transpose(image: tf.Tensor) -> tf.Tensor:
    """Swap an image's rows and columns with a gather, not a Transpose op: in a tf.data graph on this kind of CPU
    any Transpose makes TensorFlow's oneDNN pass print an error line ("oneDNN supports DT_UINT8 only on
    platforms with AVX-512") on every training run, although nothing is wrong."""
    height, width, channels = tf.shape(image)[0], tf.shape(image)[1], tf.shape(image)[2]
    order = tf.reshape(tf.range(height)[None, :] * width + tf.range(width)[:, None], (-1,))
    return tf.reshape(tf.gather(tf.reshape(image, (height * width, channels)), order), (width, height, channels))


def apply_orientation(image: tf.Tensor, orientation) -> tf.Tensor:
    """Turn a decoded image upright as its EXIF orientation says (the transforms of PIL's exif_transpose)."""
    mirror, upside_down = tf.image.flip_left_right, tf.image.flip_up_down
    return tf.switch_case(tf.cast(orientation, tf.int32), [
        lambda: image,  # 0: not a valid value, treated as 1
        lambda: image,  # 1: upright
        lambda: mirror(image),
        lambda: upside_down(mirror(image)),  # 3: half a turn
        lambda: upside_down(image),
        lambda: _transpose(image),
        lambda: mirror(_transpose(image)),  # 6: turn 90° clockwise
        lambda: upside_down(mirror(_transpose(image))),
        lambda: upside_down(_transpose(image)),  # 8: turn 90° counter-clockwise
    ])


def decode_contents(contents: tf.Tensor) -> tf.Tensor:
    """An image file's bytes as RGB uint8 at its own resolution (first frame; grey becomes three equal channels,
    alpha is dropped). PNG, BMP, GIF and WebP by TensorFlow's decoder; JPEG by it too, with the accurate integer
    DCT, which gives exactly Pillow's pixels (its default, the fast DCT, differs by up to 7 grey levels), so a
    runtime decoding with Pillow sees what training saw; TIFF by Pillow."""
    def with_pillow():
        decoded = tf.numpy_function(decode_with_pillow, [contents], tf.uint8, stateful=False)
        return tf.ensure_shape(decoded, [None, None, 3])

    def jpeg():
        return tf.ensure_shape(tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"), [None, None, 3])

    def other():
        return tf.io.decode_image(contents, channels=3, expand_animations=False, dtype=tf.uint8)

    head = tf.strings.substr(contents, 0, 4)
    kind = tf.where(tf.reduce_any(tf.equal(head, list(TIFF_MAGIC))), 0,
                    tf.where(tf.equal(tf.strings.substr(head, 0, 3), JPEG_MAGIC), 1, 2))
    return tf.switch_case(kind, [with_pillow, jpeg, other])


def decode_upright(path: tf.Tensor | str, orientation=1) -> tf.Tensor:
    """Decode an image file to RGB uint8 at its own resolution, turned upright (`orientation`: the file's EXIF
    orientation, see `exif_orientations`). Only for files the checks have passed (`data/checks.py`)."""
    return apply_orientation(decode_contents(tf.io.read_file(path)), orientation)


def resize_image(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """An upright RGB image resized to `image_size`² as the model sees it: float32 values in [0, 255]."""
    return tf.clip_by_value(tf.image.resize(image, (image_size, image_size), antialias=True), 0.0, 255.0)


def load_image(path: tf.Tensor | str, image_size: int, orientation=1) -> tf.Tensor:
    """Decode, turn upright and resize one file: the single path from file to model input."""
    return resize_image(decode_upright(path, orientation), image_size)


def read_photo(path: str) -> np.ndarray:
    """One file as upright RGB uint8 at full resolution, read through the guarded reader and checked before it is
    decoded; an unreadable file is an ImageError naming it."""
    data, header = read_image_file(path)
    try:
        return apply_orientation(decode_contents(tf.constant(data)), header.orientation).numpy()
    except (tf.errors.OpError, ValueError) as error:
        reason = getattr(error, "message", str(error)).strip().splitlines()[0]
        reason = re.sub(r"^\{\{.*?\}\}\s*", "", reason)  # TensorFlow's "{{function_node ...}}" prefix
        raise ImageError(f"{path}: cannot read image ({reason})", reason) from None


def read_image(path: str, image_size: int) -> np.ndarray:
    """Decode one file exactly as training does; an unreadable file is an ImageError naming it."""
    return resize_image(read_photo(path), image_size).numpy()
