"""A photo as the model's input, with Pillow and NumPy only: exactly what training's TensorFlow path gives
(`data/images.py`: the same decoded pixels, the same orientation, the same antialiased bilinear resize in float32),
within a thousandth of a grey level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from defect_tf.data.image_files import decode_checked
from defect_tf.errors import ImageError
from defect_tf.io.untrusted import UnreadableFileError, read_bytes
from defect_tf.limits import MAX_IMAGE_FILE_BYTES


def turn_upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a decoded image upright as its EXIF orientation (1-8) says: the transforms of PIL's exif_transpose,
    as `data/images.apply_orientation` does them in TensorFlow."""
    transposed = image.transpose(1, 0, 2) if orientation in (5, 6, 7, 8) else image
    mirror = orientation in (2, 3, 6, 7)
    upside_down = orientation in (3, 4, 7, 8)
    return transposed[::-1 if upside_down else 1, ::-1 if mirror else 1]


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """An RGB image resized to size x size (or to (height, width)) as TensorFlow's `resize(..., antialias=True)`
    does: bilinear, with the filter widened when shrinking, each channel in float32 (a uint8 resize would round);
    values clipped to 0-255."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image.astype(np.float32)
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), "F").resize(
        (width, height), Image.BILINEAR)) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0.0, 255.0)


def upright_photo(path: str | Path) -> np.ndarray:
    """A file as upright RGB uint8 at its own resolution, read through the guarded reader and checked first."""
    try:
        data = read_bytes(path, MAX_IMAGE_FILE_BYTES, "image")
    except UnreadableFileError as error:
        raise ImageError(f"{path}: cannot read image ({error.reason})", error.reason, str(path)) from None
    return photo_from_bytes(data, str(path))


def photo_from_bytes(data: bytes, name: str) -> np.ndarray:
    """An image file's bytes, checked, decoded and turned upright (one opening of the file)."""
    pixels, orientation = decode_checked(data, name)
    return np.ascontiguousarray(turn_upright(pixels, orientation))


def model_input(path: str | Path, size: int) -> np.ndarray:
    """A file as the model's input: float32, size x size x 3, values 0-255."""
    return resize(upright_photo(path), size)


def model_input_from_bytes(data: bytes, name: str, size: int) -> np.ndarray:
    """An uploaded file's bytes as the model's input, checked first as a file is."""
    return resize(photo_from_bytes(data, name), size)
