"""DRAEM's synthetic anomalies: a Perlin-noise mask filled with a foreign texture, blended into an intact photo.

The paper fills the mask with textures from the DTD data set, which cannot be downloaded here. This fills it with
a patch of another intact training photo, colour- and geometry-altered: the texture then comes from the user's own
part (the same material, lighting and grain), so the network must learn to spot a patch that does not belong where
it is, as real defects on one part do, rather than any texture that differs from the part. NumPy only, seeded.
"""

from __future__ import annotations

import numpy as np

ANOMALY_SHARE = 0.5  # of the training images that get a synthetic anomaly (the paper's); the rest stay intact
MASK_THRESHOLD = 0.5  # Perlin noise above this is the anomaly (the paper's)
SCALES = (1, 2, 4, 8, 16, 32)  # noise periods across a side: the paper's 2^0 .. 2^5, drawn per axis
MAX_OPACITY = 0.8  # the intact photo shows through the texture by up to this much (the paper's beta in [0, 0.8])


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(shape: tuple[int, int], periods: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise of `shape` with `periods` lattice cells along (rows, cols); values about -1..1."""
    rows, cols = periods
    y = np.linspace(0, rows, shape[0], endpoint=False)
    x = np.linspace(0, cols, shape[1], endpoint=False)
    yi, xi = np.floor(y).astype(int), np.floor(x).astype(int)
    yf, xf = (y - yi)[:, None], (x - xi)[None, :]
    angles = rng.uniform(0, 2 * np.pi, (rows + 1, cols + 1))
    gradients = np.stack([np.cos(angles), np.sin(angles)], axis=-1)

    def corner(dy: int, dx: int) -> np.ndarray:
        g = gradients[yi[:, None] + dy, xi[None, :] + dx]
        return g[..., 0] * (yf - dy) + g[..., 1] * (xf - dx)

    u, v = _fade(xf), _fade(yf)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return (np.sqrt(2) * (top * (1 - v) + bottom * v)).astype(np.float32)


def anomaly_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A float32 {0, 1} mask of `shape`: Perlin noise at random periods along each side (transposed half the time
    when square) above MASK_THRESHOLD. May be empty (the photo then counts as intact)."""
    periods = (int(rng.choice(SCALES)), int(rng.choice(SCALES)))
    noise = perlin_noise(shape, periods, rng)
    if rng.random() < 0.5 and shape[0] == shape[1]:
        noise = noise.T
    return (noise > MASK_THRESHOLD).astype(np.float32)


def altered_texture(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A patch (float32 0-1, rows x cols x 3) with its colours and orientation changed, three of the paper's kinds
    of change at random: flips, brightness, contrast, channel order, inversion, posterisation, solarisation."""
    texture = patch[::-1] if rng.random() < 0.5 else patch
    texture = texture[:, ::-1] if rng.random() < 0.5 else texture
    changes = rng.choice(5, size=3, replace=False)
    for change in changes:
        if change == 0:
            texture = texture * rng.uniform(0.6, 1.4) + rng.uniform(-0.2, 0.2)
        elif change == 1:
            texture = texture[..., rng.permutation(3)]
        elif change == 2:
            texture = 1.0 - texture
        elif change == 3:
            levels = float(rng.integers(2, 8))
            texture = np.round(texture * levels) / levels
        else:
            cut = rng.uniform(0.3, 0.9)
            texture = np.where(texture > cut, 1.0 - texture, texture)
    return np.clip(texture, 0.0, 1.0).astype(np.float32)


def synthesise(image: np.ndarray, texture: np.ndarray, rng: np.random.Generator,
               share: float = ANOMALY_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """(altered image, its anomaly mask) for an intact image and a texture (both float32 0-1, the same rows x
    cols x 3): with probability `share` the mask's pixels become texture * (1 - beta) + image * beta, beta drawn
    from 0 to MAX_OPACITY; otherwise the image is returned unchanged with an empty mask."""
    if rng.random() >= share:
        return image, np.zeros(image.shape[:2], np.float32)
    mask = anomaly_mask(image.shape[:2], rng)
    beta = rng.uniform(0.0, MAX_OPACITY)
    m = mask[..., None]
    altered = image * (1 - m) + (1 - beta) * altered_texture(texture, rng) * m + beta * image * m
    return altered.astype(np.float32), mask
