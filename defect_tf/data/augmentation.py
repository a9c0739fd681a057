"""Training-time augmentation as Keras layers, run inside the tf.data graph on whole batches.

`standard`: two layers instead of Keras's RandomFlip + RandomRotation + RandomErasing, the same kinds of
transforms at a fraction of their CPU cost, their pixel work compiled by XLA (docs/how_it_works.md). `heavy`
adds, each to a share of the images, the Albumentations-style transforms of the sibling systems: elastic
distortion, CLAHE, colour jitter, Gaussian or motion blur and Gaussian noise. On a CPU the augmentation
competes with the training step for the same cores, so its cost is training speed (benchmarks/throughput.py).
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics

import keras
import numpy as np
import tensorflow as tf
from keras import ops

CUTOUT_AREA = (0.01, 0.06)  # fraction of the image one erased patch covers; large patches would hide defects
CUTOUT_ASPECT = (0.3, 1 / 0.3)  # patch height / width, as in Random Erasing (Zhong et al., 2020)
ROTATIONS = ("free", "quarter")  # any angle up to ±0.2 turn, or exact quarter turns (no resampling)
PRESETS = ("standard", "heavy")  # standard: flips, rotation, Cutout; heavy: also the photometric and elastic layers
HEAVY_SHARE = 0.3  # of the images each heavy-preset layer changes, so most images still show each look unaltered
MIXUP_ALPHA = 0.2  # Beta(alpha, alpha) mixing weights: most pairs stay close to one of the two images (Zhang et al.)


def compiled(function):
    """`function` compiled by XLA, which fuses per-pixel arithmetic and gathers into one loop built for this CPU,
    where TensorFlow runs one generic kernel per op. Only for functions that draw no random numbers: XLA draws
    other numbers than TensorFlow's kernels, and pixel-sized random fields slowly on a CPU."""
    return tf.function(function, jit_compile=True)


def _per_image(values):
    return values[:, None, None, None]


class RandomImageLayer(keras.layers.Layer):
    """Base of the augmentation layers: a seeded random stream and identity when not training;
    each subclass defines `augment(images)`, the transform itself."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        return self.augment(images) if training else images

    def uniform(self, batch, low: float = 0.0, high: float = 1.0):
        """One uniform draw per image of the batch."""
        return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

    def random_integers(self, shape, dtype=tf.uint8):
        """Uniform whole numbers over the whole range of `dtype` (uint8 or uint16), of `shape`, several from each
        32-bit draw: a fraction of the random-number work of float draws, which is what a pixel-sized noise
        field costs."""
        count, per_word = tf.reduce_prod(shape), 4 // dtype.size
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)  # as keras.random
        words = tf.random.stateless_uniform(((count + per_word - 1) // per_word,), seed, minval=None, maxval=None,
                                            dtype=tf.uint32)
        return tf.reshape(tf.reshape(tf.bitcast(words, dtype), (-1,))[:count], shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="defect_tf")
class RandomFlipRotation(RandomImageLayer):
    """Flip each image left-right and up-down (each with probability 1/2) and rotate it by a uniform
    angle in ±`max_turn` of a full turn, all in one resampling; the borders reflect, so no black
    corners look like defects. With `quarter_turns`, the angle is instead 0, 1, 2 or 3 quarter turns
    and pixels are moved, not interpolated: each square image becomes exactly one of its 8
    orientations, sharp edges stay sharp. With `elastic`, that share of the images is also distorted
    smoothly in the same resampling: a random displacement of up to `max_shift` of the image's size on a
    coarse `grid` x `grid` lattice, interpolated to every pixel. Identity when not training."""

    def __init__(self, max_turn: float = 0.2, quarter_turns: bool = False, elastic: float = 0.0,
                 max_shift: float = 0.03, grid: int = 4, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_turn = float(max_turn)
        self.quarter_turns = bool(quarter_turns)
        self.elastic, self.max_shift, self.grid = float(elastic), float(max_shift), int(grid)

    def random_matrices(self, batch):
        """Each image's rotation @ flips as (batch, 4): a0, a1, b0, b1 of [[a0, a1], [b0, b1]]."""
        if self.quarter_turns:
            angle = ops.floor(self.uniform(batch, 0.0, 4.0)) * (math.pi / 2)
        else:
            limit = 2 * math.pi * self.max_turn
            angle = self.uniform(batch, -limit, limit)
        flip_x = ops.where(self.uniform(batch) < 0.5, -1.0, 1.0)
        flip_y = ops.where(self.uniform(batch) < 0.5, -1.0, 1.0)
        cos, sin = ops.cos(angle), ops.sin(angle)
        if self.quarter_turns:
            cos, sin = ops.round(cos), ops.round(sin)  # exactly 0 or ±1, so pixel centres land on pixel centres
        return ops.stack([cos * flip_x, -sin * flip_y, sin * flip_x, cos * flip_y], axis=1)

    def augment(self, images):
        batch = ops.shape(images)[0]
        matrices, shift = self.random_matrices(batch), None
        if self.elastic:  # the displacement on the coarse lattice, in pixels; zero for the images not drawn
            drawn = ops.cast(self.uniform(batch) < self.elastic, "float32")[:, None, None, None]
            coarse = keras.random.uniform((batch, self.grid, self.grid, 2), -1.0, 1.0, seed=self.seed_generator)
            shift = drawn * coarse * (self.max_shift * max(images.shape[1], images.shape[2]))
        return _warp(images, matrices, shift, nearest=self.quarter_turns and not self.elastic)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_turn": self.max_turn, "quarter_turns": self.quarter_turns,
                "elastic": self.elastic, "max_shift": self.max_shift, "grid": self.grid}


@keras.saving.register_keras_serializable(package="defect_tf")
class RandomCutout(RandomImageLayer):
    """With `probability`, erase one rectangle per image (a uniform share `area` of the image, aspect
    ratio in `aspect`, anywhere inside it) and fill it with uniform noise over `value_range` (256 evenly spaced
    levels: every grey level for the default 0..255). Identity when not training."""

    def __init__(self, probability: float = 0.5, area=CUTOUT_AREA, aspect=CUTOUT_ASPECT, value_range=(0.0, 255.0),
                 seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.probability = float(probability)
        self.area, self.aspect, self.value_range = tuple(area), tuple(aspect), tuple(value_range)

    def augment(self, images):
        batch = ops.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        uniform = lambda low=0.0, high=1.0: self.uniform(batch, low, high)
        area = uniform(*self.area) * height * width
        aspect = ops.exp(uniform(math.log(self.aspect[0]), math.log(self.aspect[1])))
        patch_height = ops.clip(ops.round(ops.sqrt(area * aspect)), 1.0, height)
        patch_width = ops.clip(ops.round(ops.sqrt(area / aspect)), 1.0, width)
        top = ops.floor(uniform() * (height - patch_height + 1))
        left = ops.floor(uniform() * (width - patch_width + 1))
        applied = ops.cast(uniform() < self.probability, "float32")[:, None]  # an empty box when not applied
        boxes = ops.stack([top, top + patch_height, left, left + patch_width], axis=1) * applied
        return _erase(images, boxes, self.random_integers(tf.shape(images)), self.value_range)

    def get_config(self) -> dict:
        return {**super().get_config(), "probability": self.probability, "area": self.area, "aspect": self.aspect,
                "value_range": self.value_range}


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """The 2**16 quantiles of the standard normal at the midpoints of equal-probability bins, scaled to exactly
    unit variance (their mean is 0 by symmetry)."""
    levels = 2 ** 16
    quantiles = np.array([statistics.NormalDist().inv_cdf((k + 0.5) / levels) for k in range(levels)])
    return (quantiles / quantiles.std()).astype(np.float32)


def _grey(images):
    """Luminance (ITU-R BT.601) of RGB images, keeping a channel axis of 1."""
    return ops.sum(images * ops.convert_to_tensor([0.299, 0.587, 0.114], images.dtype), axis=-1, keepdims=True)


class SomeImagesLayer(RandomImageLayer):
    """Base of the heavy preset's layers: each image is drawn with `probability`, and `transform` runs on the
    drawn images only (gathered, transformed, scattered back), so a layer costs in proportion to the images it
    changes and the others pass through untouched. Subclasses define `draw(images)`, the random numbers for those
    images (a tuple), and `transform(images, *numbers)`, which draws none; with `xla`, the transform runs compiled
    (see `compiled`) on every image and the drawn ones are kept (XLA's shapes are fixed)."""

    xla = False

    def __init__(self, probability: float = HEAVY_SHARE, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.probability = float(probability)
        self.compiled_transform_drawn = compiled(self.transform_drawn) if self.xla else None

    def augment(self, images):
        drawn = self.uniform(tf.shape(images)[0]) < self.probability
        if self.xla:
            return self.compiled_transform_drawn(images, drawn, *self.draw(images))
        drawn = tf.where(drawn)  # (n, 1) indices

        def transform_drawn_only():
            chosen = tf.gather_nd(images, drawn)
            return tf.tensor_scatter_nd_update(images, drawn, self.transform(chosen, *self.draw(chosen)))

        return tf.cond(tf.shape(drawn)[0] > 0, transform_drawn_only, lambda: images)

    def draw(self, images) -> tuple:
        """The random numbers `transform` needs for these images; none by default."""
        return ()

    def transform_drawn(self, images, drawn, *numbers):
        """Every image transformed, then the drawn ones kept."""
        return tf.where(drawn[:, None, None, None], self.transform(images, *numbers), images)

    def get_config(self) -> dict:
        return {**super().get_config(), "probability": self.probability}


@keras.saving.register_keras_serializable(package="defect_tf")
class RandomColorJitter(SomeImagesLayer):
    """Scale an image's brightness, contrast and saturation by independent uniform factors in 1 ± `strength`
    (values stay in 0..255)."""

    xla = True

    def __init__(self, probability: float = HEAVY_SHARE, strength: float = 0.2, seed: int | None = None, **kwargs):
        super().__init__(probability, seed=seed, **kwargs)
        self.strength = float(strength)

    def draw(self, images) -> tuple:
        """Each image's brightness, contrast and saturation factors."""
        return tuple(self.uniform(tf.shape(images)[0], 1 - self.strength, 1 + self.strength) for _ in range(3))

    def transform(self, images, brightness, contrast, saturation):
        brightness, contrast, saturation = _per_image(brightness), _per_image(contrast), _per_image(saturation)
        # brightness x b, then contrast c about the mean grey m, then saturation s about each pixel's grey g,
        # folded into one pass: c b (s x + (1 - s) g) + (1 - c) m, where m = b mean(g) (the weights of g sum to 1)
        grey = _grey(images)
        mean = brightness * ops.mean(grey, axis=(1, 2, 3), keepdims=True)
        scale = contrast * brightness
        return ops.clip(scale * (saturation * images + (1 - saturation) * grey) + (1 - contrast) * mean, 0.0, 255.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "strength": self.strength}


@keras.saving.register_keras_serializable(package="defect_tf")
class RandomGaussianNoise(SomeImagesLayer):
    """Add Gaussian noise of a uniform standard deviation up to `max_std` grey levels. Each value is one of 2**16
    equally likely normal quantiles (reaching ±4.3 standard deviations), picked by a 16-bit random number: less
    random-number work than drawing normal floats."""

    def __init__(self, probability: float = HEAVY_SHARE, max_std: float = 10.0, seed: int | None = None, **kwargs):
        super().__init__(probability, seed=seed, **kwargs)
        self.max_std = float(max_std)

    def draw(self, images) -> tuple:
        """Each image's standard deviation, and each value's quantile (0 .. 2**16 - 1)."""
        std = self.uniform(tf.shape(images)[0], 0.0, self.max_std)
        return std, tf.cast(self.random_integers(tf.shape(images), tf.uint16), tf.int32)

    def transform(self, images, std, quantile):
        noise = tf.gather(tf.constant(_normal_quantiles()), quantile)
        return ops.clip(images + _per_image(std) * noise, 0.0, 255.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_std": self.max_std}


@keras.saving.register_keras_serializable(package="defect_tf")
class RandomBlur(SomeImagesLayer):
    """Blur an image: half of them with a Gaussian (sigma 0.5 to `max_sigma` px), half with a motion blur (a line
    of up to `size` px at any angle). Each image gets its own kernel, in one depthwise convolution over the
    batch; borders reflect."""

    def __init__(self, probability: float = HEAVY_SHARE, max_sigma: float = 1.5, size: int = 7,
                 seed: int | None = None, **kwargs):
        super().__init__(probability, seed=seed, **kwargs)
        self.max_sigma, self.size = float(max_sigma), int(size)

    def kernels(self, batch):
        """One normalised `size` x `size` kernel per image: a Gaussian or a motion line."""
        half = self.size // 2
        offsets = ops.arange(-half, half + 1, dtype="float32")
        dy, dx = offsets[None, :, None], offsets[None, None, :]
        draw = lambda low, high: self.uniform(batch, low, high)[:, None, None]
        sigma, angle, length = draw(0.5, self.max_sigma), draw(0.0, math.pi), draw(2.0, float(half))
        gaussian = ops.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
        along = dx * ops.cos(angle) + dy * ops.sin(angle)
        across = -dx * ops.sin(angle) + dy * ops.cos(angle)
        motion = ops.maximum(0.0, 1.0 - ops.abs(across)) * ops.cast(ops.abs(along) <= length, "float32")
        kernel = ops.where(draw(0.0, 1.0) < 0.5, gaussian, motion)
        return kernel / ops.sum(kernel, axis=(1, 2), keepdims=True)

    def draw(self, images) -> tuple:
        return (self.kernels(tf.shape(images)[0]),)

    def transform(self, images, kernels):
        batch, channels = tf.shape(images)[0], images.shape[-1]
        height, width, half = images.shape[1], images.shape[2], self.size // 2
        kernel = tf.transpose(kernels, (1, 2, 0))  # size, size, batch
        kernel = tf.reshape(tf.repeat(kernel[..., None], channels, axis=-1), (self.size, self.size, -1, 1))
        stacked = tf.reshape(tf.transpose(images, (1, 2, 0, 3)), (1, height, width, -1))  # images as channels
        stacked = tf.pad(stacked, [[0, 0], [half, half], [half, half], [0, 0]], mode="REFLECT")
        blurred = tf.nn.depthwise_conv2d(stacked, kernel, strides=[1, 1, 1, 1], padding="VALID")
        return tf.transpose(tf.reshape(blurred, (height, width, batch, channels)), (2, 0, 1, 3))

    def get_config(self) -> dict:
        return {**super().get_config(), "max_sigma": self.max_sigma, "size": self.size}


def _upsampling(coarse: int, fine: int) -> tf.Tensor:
    """The (fine, coarse) matrix of bilinear interpolation from `coarse` points to `fine` ones, both spread
    evenly over the same length (pixel centres, as tf.image.resize)."""
    position = np.clip((np.arange(fine) + 0.5) * coarse / fine - 0.5, 0, coarse - 1)
    low = np.floor(position).astype(int)
    high, weight = np.minimum(low + 1, coarse - 1), position - low
    matrix = np.zeros((fine, coarse), np.float32)
    np.add.at(matrix, (np.arange(fine), low), 1 - weight)
    np.add.at(matrix, (np.arange(fine), high), weight)
    return tf.constant(matrix)


def _reflect(coordinates, size: int):
    """Coordinates folded back into [0, size - 1], mirrored about the image's outer pixel edges
    (d c b a | a b c d | d c b a), as TensorFlow's `reflect` fill."""
    period = 2.0 * size
    folded = tf.math.floormod(coordinates + 0.5, period)
    return tf.clip_by_value(tf.where(folded >= size, period - folded, folded) - 0.5, 0.0, size - 1.0)


def _resample(images, rows, columns, nearest: bool = False):
    """Each image of the batch sampled at fractional (`rows`, `columns`), both (batch, height, width) and inside
    the image: bilinear, or the nearest pixel."""
    batch, (height, width, channels) = tf.shape(images)[0], images.shape[1:]
    base = tf.range(batch)[:, None, None] * height * width
    pixels = tf.reshape(images, (-1, channels))
    if nearest:
        row, column = tf.cast(tf.round(rows), tf.int32), tf.cast(tf.round(columns), tf.int32)
        return tf.gather(pixels, base + row * width + column)

    def index(r, c):
        return base + tf.minimum(r, height - 1) * width + tf.minimum(c, width - 1)

    return _bilinear_lookup(pixels, rows, columns, index)


@compiled
def _erase(images, boxes, levels, value_range: tuple):
    """Each image's box (batch, 4: top, bottom, left, right; bottom and right excluded) filled with its `levels`
    (uint8, the image's shape), scaled from 0..255 to `value_range`."""
    rows = tf.range(images.shape[1], dtype=tf.float32)[None, :, None, None]
    columns = tf.range(images.shape[2], dtype=tf.float32)[None, None, :, None]
    top, bottom, left, right = (_per_image(side) for side in tf.unstack(boxes, axis=1))
    inside = (rows >= top) & (rows < bottom) & (columns >= left) & (columns < right)
    low, high = value_range
    noise = low + (high - low) / 255.0 * tf.cast(levels, images.dtype)
    return tf.where(inside, noise, images)


@compiled
def _warp(images, matrices, shift=None, nearest: bool = False):
    """Output pixel (x, y) of each image samples it at centre + matrix @ ((x, y) + shift(x, y) - centre), borders
    reflected. `matrices`: (batch, 4) as a0, a1, b0, b1 of [[a0, a1], [b0, b1]]; `shift`: a displacement in
    pixels on a coarse lattice, (batch, rows, columns, 2), bilinear in between; `nearest`: no interpolation."""
    height, width = images.shape[1], images.shape[2]
    a0, a1, b0, b1 = (row[:, None, None] for row in tf.unstack(matrices, axis=1))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    x = tf.range(width, dtype=tf.float32)[None, None, :] - cx
    y = tf.range(height, dtype=tf.float32)[None, :, None] - cy
    if shift is not None:
        fine = tf.einsum("hi,bijc,wj->bhwc", _upsampling(shift.shape[1], height), shift,
                         _upsampling(shift.shape[2], width))
        x, y = x + fine[..., 1], y + fine[..., 0]
    return _resample(images, _reflect(cy + b0 * x + b1 * y, height), _reflect(cx + a0 * x + a1 * y, width), nearest)


def _bilinear_lookup(table, rows, columns, index):
    """Rows of `table` at `index(row, column)` for fractional rows and columns, interpolated between the four
    neighbours (`index` gets them as whole numbers and clamps them); a table of vectors (e.g. pixels' channels)
    gives vectors."""
    top, left = tf.floor(rows), tf.floor(columns)
    down, right = rows - top, columns - left
    if len(table.shape) > 1:
        down, right = down[..., None], right[..., None]
    top, left = tf.cast(top, tf.int32), tf.cast(left, tf.int32)
    corner = lambda r, c: tf.gather(table, index(r, c))
    return ((1 - down) * ((1 - right) * corner(top, left) + right * corner(top, left + 1))
            + down * ((1 - right) * corner(top + 1, left) + right * corner(top + 1, left + 1)))


@keras.saving.register_keras_serializable(package="defect_tf")
class RandomCLAHE(SomeImagesLayer):
    """Contrast-limited adaptive histogram equalisation (CLAHE) of an image's luminance, by OpenCV's algorithm:
    a histogram per tile of a `tiles` x `tiles` grid, clipped at `clip_limit` times the mean bin and the excess
    spread evenly, each tile's equalising map interpolated bilinearly between tile centres (tests compare it
    with cv2.createCLAHE). The change in luminance is added to every channel, so colours keep their hue."""

    xla = True

    def __init__(self, probability: float = HEAVY_SHARE, clip_limit: float = 2.0, tiles: int = 4,
                 seed: int | None = None, **kwargs):
        super().__init__(probability, seed=seed, **kwargs)
        self.clip_limit, self.tiles = float(clip_limit), int(tiles)

    def transform(self, images):
        batch, (height, width) = tf.shape(images)[0], images.shape[1:3]
        tiles, levels = self.tiles, 256
        grey = _grey(images)[..., 0]
        level = tf.cast(tf.clip_by_value(tf.round(grey), 0, levels - 1), tf.int32)
        tile_row = (tf.range(height) * tiles // height)[None, :, None]
        tile_column = (tf.range(width) * tiles // width)[None, None, :]
        image = tf.range(batch)[:, None, None]
        bins = ((image * tiles + tile_row) * tiles + tile_column) * levels + level
        histogram = tf.math.unsorted_segment_sum(tf.ones_like(grey), bins, batch * tiles * tiles * levels)
        histogram = tf.reshape(histogram, (batch, tiles, tiles, levels))
        pixels = tf.reduce_sum(histogram, axis=-1, keepdims=True)
        limit = tf.maximum(tf.floor(self.clip_limit * pixels / levels), 1.0)
        excess = tf.reduce_sum(tf.nn.relu(histogram - limit), axis=-1, keepdims=True)
        histogram = tf.minimum(histogram, limit) + excess / levels
        lookup = tf.reshape(tf.cumsum(histogram, axis=-1) * (levels - 1) / pixels, (-1,))
        # each pixel between the centres of its four nearest tiles (clamped at the borders), placed as OpenCV does
        rows = tf.clip_by_value(tf.range(height, dtype=tf.float32) * tiles / height - 0.5, 0, tiles - 1)
        columns = tf.clip_by_value(tf.range(width, dtype=tf.float32) * tiles / width - 0.5, 0, tiles - 1)

        def index(r, c):
            return ((image * tiles + tf.minimum(r, tiles - 1)) * tiles + tf.minimum(c, tiles - 1)) * levels + level

        equalised = _bilinear_lookup(lookup, rows[None, :, None], columns[None, None, :], index)
        return tf.clip_by_value(images + (equalised - grey)[..., None], 0.0, 255.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "clip_limit": self.clip_limit, "tiles": self.tiles}


def build_augmentation(rotation: str = "free", cutout: bool = True, preset: str = "standard",
                       seed: int | None = None) -> keras.Sequential:
    """Random flips (both axes) and rotation, by up to ±0.2 turn (±72°, `free`) or by quarter turns
    (`quarter`: lossless, for square images whose sharp edges interpolation would blur, e.g. scanned
    boards); with the `heavy` preset, then elastic distortion, CLAHE, colour jitter, blur and noise, each on
    HEAVY_SHARE of the images; then, optionally, Cutout on half of the images. A seed makes the sequence
    of augmented batches repeat."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, not {rotation!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, not {preset!r}")
    seeds = itertools.count(seed) if seed is not None else itertools.repeat(None)
    next_seed = lambda: next(seeds)  # noqa: E731  (each layer its own stream: seed, seed + 1, ...)
    elastic = HEAVY_SHARE if preset == "heavy" else 0.0
    layers = [RandomFlipRotation(0.2, quarter_turns=rotation == "quarter", elastic=elastic, seed=next_seed())]
    if preset == "heavy":
        layers += [RandomCLAHE(seed=next_seed()), RandomColorJitter(seed=next_seed()),
                   RandomBlur(seed=next_seed()), RandomGaussianNoise(seed=next_seed())]
    if cutout:
        layers.append(RandomCutout(0.5, seed=next_seed()))
    return keras.Sequential(layers, name="augmentation")


class MixUp:
    """MixUp (Zhang et al., 2018) on a training batch: each image is blended with its partner in the reversed batch,
    weight lambda ~ Beta(alpha, alpha), and so are the labels. A label entry stays known only where both images'
    entries are known (NA, -1, where either is NA); the losses train on the resulting soft targets."""

    def __init__(self, alpha: float = MIXUP_ALPHA, seed: int | None = None):
        self.alpha = float(alpha)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def __call__(self, images, labels):
        batch = ops.shape(images)[0]
        weight = keras.random.beta((batch,), self.alpha, self.alpha, seed=self.seed_generator)
        partner_images, partner_labels = ops.flip(images, axis=0), ops.flip(labels, axis=0)
        mixed_images = _per_image(weight) * images + _per_image(1.0 - weight) * partner_images
        known = (labels >= 0) & (partner_labels >= 0)
        mixed_labels = weight[:, None] * labels + (1.0 - weight[:, None]) * partner_labels
        return mixed_images, ops.where(known, mixed_labels, -1.0)


def build_training_transforms(rotation: str = "free", cutout: bool = True, preset: str = "standard",
                              mixup: float | None = None,
                              seed: int | None = None) -> tuple[keras.Sequential, MixUp | None]:
    """The augmentation layers and, with a MixUp alpha, the batch MixUp; MixUp's seed follows the layers' seeds
    (seed, seed + 1, ...) so no two random streams of a run draw the same numbers."""
    augment = build_augmentation(rotation, cutout, preset, seed=seed)
    mixup_seed = seed + len(augment.layers) if seed is not None else None
    return augment, MixUp(mixup, seed=mixup_seed) if mixup else None
