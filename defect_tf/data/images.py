"""Reading one image: decode upright (EXIF orientation), refuse what is too large, resize.

`load_image` is the one decoding path, used by training, evaluation and inference alike.
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf
from PIL import Image

from defect_tf.errors import ImageError

EXIF_ORIENTATION_TAG = 0x0112
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}  # what counts as an image file in a folder
MAX_IMAGE_PIXELS = 100_000_000  # 100 megapixels: ~300 MB once decoded; larger files are refused, not decoded


def oversized(path: str) -> str | None:
    """Why an image is too large to decode safely (from its header alone), or None if it is not."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        return f"larger than {MAX_IMAGE_PIXELS // 1_000_000} megapixels; downscale it first"
    except Exception:  # not something Pillow reads: TensorFlow's decoder gives the real reason
        return None
    if width * height > MAX_IMAGE_PIXELS:
        return f"{width}x{height} is larger than {MAX_IMAGE_PIXELS // 1_000_000} megapixels; downscale it first"
    return None


def exif_orientations(paths: list[str]) -> np.ndarray:
    """Each file's EXIF orientation (1-8), read from its header only; 1 where it has none or can't be opened.

    TensorFlow's decoders ignore EXIF, so a phone photo taken upright would reach the model sideways.
    """
    orientations = np.ones(len(paths), np.int32)
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
        except Exception:  # unreadable files are reported by validation, not here
            continue
        orientations[index] = value if value in range(1, 9) else 1
    return orientations


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


def decode_upright(path: tf.Tensor | str, orientation=1) -> tf.Tensor:
    """Decode a JPEG / PNG / BMP / GIF file to RGB uint8 at its own resolution, turned upright.

    Grayscale becomes three equal channels; an alpha channel is dropped; `orientation` is the
    file's EXIF orientation (see `exif_orientations`).
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False, dtype=tf.uint8)
    return apply_orientation(image, orientation)


def resize_image(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """An upright RGB image resized to `image_size`² as the model sees it: float32 values in [0, 255]."""
    return tf.clip_by_value(tf.image.resize(image, (image_size, image_size), antialias=True), 0.0, 255.0)


def load_image(path: tf.Tensor | str, image_size: int, orientation=1) -> tf.Tensor:
    """Decode, turn upright and resize one file: the single path from file to model input."""
    return resize_image(decode_upright(path, orientation), image_size)


def read_photo(path: str) -> np.ndarray:
    """One file as upright RGB uint8 at full resolution; an unreadable file is an ImageError naming it."""
    too_large = oversized(str(path))
    if too_large:
        raise ImageError(f"{path}: cannot read image ({too_large})", too_large)
    try:
        return decode_upright(str(path), int(exif_orientations([str(path)])[0])).numpy()
    except (tf.errors.OpError, ValueError) as error:
        reason = getattr(error, "message", str(error)).strip().splitlines()[0]
        reason = re.sub(r"^\{\{.*?\}\}\s*", "", reason)  # TensorFlow's "{{function_node ...}}" prefix
        raise ImageError(f"{path}: cannot read image ({reason})", reason) from None


def read_image(path: str, image_size: int) -> np.ndarray:
    """Decode one file exactly as training does; an unreadable file is an ImageError naming it."""
    return resize_image(read_photo(path), image_size).numpy()
