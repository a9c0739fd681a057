"""Anomaly maps between sizes: smoothed at the model's resolution, then brought to the photo's own pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

SMOOTHING_SIGMA = 4.0  # pixels of the model's input: PatchCore's Gaussian


def smooth(anomaly_map: np.ndarray, sigma: float = SMOOTHING_SIGMA) -> np.ndarray:
    """A Gaussian blur of the map (edges reflected), so one odd patch does not decide a photo's score."""
    return ndimage.gaussian_filter(np.asarray(anomaly_map, np.float32), sigma, mode="reflect")


def resize_map(anomaly_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map resized to (height, width) with bilinear interpolation, in float32."""
    if anomaly_map.shape == tuple(shape):
        return np.asarray(anomaly_map, np.float32)
    image = Image.fromarray(np.ascontiguousarray(anomaly_map, dtype=np.float32), "F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)
