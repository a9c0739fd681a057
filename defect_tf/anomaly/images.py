"""A photo as an anomaly model's input: its aspect ratio kept (tiles, boards and parts are rarely square, and
squashing them changes what a defect looks like), the shorter side at the model's size, both sides whole multiples
of the deepest feature map's stride. Pillow and NumPy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defect_tf.runtime.images import resize, upright_photo

STRIDE = 32  # both sides are multiples of this, so every feature level's map has whole cells
STANDARD_SPREAD = 40.0  # grey levels: a typical photo's spread
MAX_ASPECT = 4.0  # a longer side is capped at this many times the shorter (a long strip is cut short, not refused)


def working_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) of the model's input for a photo of `height` x `width`: the shorter side `side`, the aspect
    ratio kept (up to MAX_ASPECT), each rounded to a multiple of STRIDE."""
    scale = side / min(height, width)
    limit = side * MAX_ASPECT

    def fit(length: int) -> int:
        return max(STRIDE, round(min(length * scale, limit) / STRIDE) * STRIDE)

    return fit(height), fit(width)


def model_input(photo: np.ndarray, side: int) -> np.ndarray:
    """An upright RGB photo (uint8, its own size) as float32 0-255 at its working size."""
    return resize(photo, working_size(*photo.shape[:2], side))


def standardised(inputs: np.ndarray, spread: float = STANDARD_SPREAD) -> np.ndarray:
    """Each channel shifted and scaled to mean 127.5 and standard deviation `spread`: photos of one part taken
    brighter or darker compare on their texture, not their exposure (not clipped: the backbone takes any value)."""
    mean = inputs.mean(axis=(0, 1), keepdims=True)
    deviation = inputs.std(axis=(0, 1), keepdims=True)
    return ((inputs - mean) / np.maximum(deviation, 1e-3) * spread + 127.5).astype(np.float32)


def read_photo(path: str | Path) -> np.ndarray:
    """A file as an upright RGB uint8 array, through the guarded reader and the pixel budget."""
    return upright_photo(path)
