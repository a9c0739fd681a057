"""DRAEM's losses: the reconstruction is scored by L2 plus SSIM (structure, which L2 alone blurs away), the
segmentation by the focal loss (the anomaly covers a few per cent of the pixels; easy background pixels are
down-weighted). Keras ops, so they run inside the training step."""

from __future__ import annotations

import numpy as np
from keras import ops

SSIM_WINDOW = 11  # pixels; Gaussian weights with SSIM_SIGMA, as in Wang et al. (2004) and the paper
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2  # stabilisers for images in 0..1 (dynamic range 1)
SSIM_C2 = 0.03**2
FOCAL_GAMMA = 2.0  # the paper's


def _gaussian_window(channels: int) -> np.ndarray:
    offsets = np.arange(SSIM_WINDOW, dtype=np.float64) - SSIM_WINDOW // 2
    line = np.exp(-offsets**2 / (2 * SSIM_SIGMA**2))
    window = np.outer(line, line) / line.sum() ** 2
    return np.tile(window[:, :, None, None], (1, 1, channels, 1)).astype(np.float32)


def ssim_map(a, b):
    """Per-pixel SSIM of two batches of images (batch, rows, cols, channels; values 0..1), local statistics under
    a Gaussian window, zero padding at the edges ("same" convolution, as in the paper's code)."""
    window = ops.convert_to_tensor(_gaussian_window(a.shape[-1]))

    def local_mean(x):
        return ops.depthwise_conv(x, window, strides=1, padding="same")

    mean_a, mean_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mean_a**2
    var_b = local_mean(b * b) - mean_b**2
    covariance = local_mean(a * b) - mean_a * mean_b
    return ((2 * mean_a * mean_b + SSIM_C1) * (2 * covariance + SSIM_C2)
            / ((mean_a**2 + mean_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)))


def ssim_loss(clean, reconstruction):
    """1 - mean SSIM: 0 for a perfect reconstruction."""
    return 1.0 - ops.mean(ssim_map(clean, reconstruction))


def reconstruction_loss(clean, reconstruction):
    """L2 (mean squared error) plus the SSIM loss, the paper's reconstruction objective."""
    return ops.mean(ops.square(clean - reconstruction)) + ssim_loss(clean, reconstruction)


def focal_loss(mask, logits, gamma: float = FOCAL_GAMMA):
    """Mean binary focal loss of per-pixel logits against a {0, 1} mask: -(1 - p_t)^gamma * log(p_t), p_t the
    probability given to the true answer (Lin et al., 2017)."""
    log_p_true = ops.log_sigmoid(ops.where(mask > 0.5, logits, -logits))  # stable for large logits
    return ops.mean(-ops.power(1.0 - ops.exp(log_p_true), gamma) * log_p_true)
