"""The heavy preset's layers: each does what its name says, leaves an image alone when it is not drawn, and
serialises; the whole preset is seeded like the standard one."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_tf.data.augmentation import (
    HEAVY_SHARE,
    PRESETS,
    RandomBlur,
    RandomCLAHE,
    RandomColorJitter,
    RandomCutout,
    RandomFlipRotation,
    RandomGaussianNoise,
    _normal_quantiles,
    build_augmentation,
    build_training_transforms,
)

HEAVY_LAYERS = [RandomColorJitter, RandomGaussianNoise, RandomBlur, RandomCLAHE]


def photos(batch=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(20, 235, (batch, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("layer", HEAVY_LAYERS)
def test_an_image_not_drawn_is_left_exactly_as_it_was_and_outside_training_nothing_changes(layer):
    images = photos()
    np.testing.assert_allclose(layer(0.0, seed=1)(images, training=True).numpy(), images, atol=1e-3)
    np.testing.assert_array_equal(layer(1.0, seed=1)(images, training=False), images)
    changed = layer(1.0, seed=1)(images, training=True).numpy()
    assert changed.shape == images.shape and not np.allclose(changed, images, atol=0.5)
    assert changed.min() >= 0.0 and changed.max() <= 255.0
    # with probability 1/2 some images change and the others stay exactly as they were
    batch = photos(16)
    half = layer(0.5, seed=5)(batch, training=True).numpy()
    untouched = [np.array_equal(half[i], batch[i]) for i in range(16)]
    assert 0 < sum(untouched) < 16
    original = layer(0.4, seed=3)
    assert layer.from_config(original.get_config()).get_config() == original.get_config()


def test_colour_jitter_on_a_grey_image_is_a_brightness_change_of_at_most_a_fifth():
    grey = np.full((8, 16, 16, 3), 100.0, np.float32)  # contrast and saturation have nothing to act on
    jittered = RandomColorJitter(1.0, strength=0.2, seed=0)(grey, training=True).numpy()
    per_image = jittered[:, 0, 0, 0]
    np.testing.assert_allclose(jittered, per_image[:, None, None, None] * np.ones_like(grey), rtol=1e-5)
    assert np.all((80 - 1e-3 <= per_image) & (per_image <= 120 + 1e-3)) and len(set(per_image.round(3))) == 8


def test_colour_jitter_is_brightness_then_contrast_then_saturation_in_one_pass():
    images = photos(2, 16)
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    brighter = images * 1.1
    mean = (brighter @ weights).mean(axis=(1, 2))[:, None, None, None]
    contrasted = mean + (brighter - mean) * 0.8
    grey = (contrasted @ weights)[..., None]
    expected = np.clip(grey + (contrasted - grey) * 1.3, 0, 255)
    factors = [np.full(2, factor, np.float32) for factor in (1.1, 0.8, 1.3)]  # brightness, contrast, saturation
    np.testing.assert_allclose(RandomColorJitter().transform(images, *factors).numpy(), expected, atol=1e-3)


def test_the_noise_levels_are_a_standard_normal_in_equally_likely_steps():
    quantiles = _normal_quantiles()
    assert quantiles.shape == (2 ** 16,) and np.all(np.diff(quantiles) > 0)
    assert abs(quantiles.mean()) < 1e-6 and abs(quantiles.std() - 1.0) < 1e-6
    assert abs(np.mean(np.abs(quantiles) < 1.0) - 0.6827) < 1e-3  # the share within one standard deviation
    assert abs(np.mean(np.abs(quantiles) < 2.0) - 0.9545) < 1e-3
    assert 4.2 < quantiles.max() < 4.4


def test_noise_has_a_standard_deviation_of_at_most_max_std_grey_levels():
    flat = np.full((16, 32, 32, 3), 128.0, np.float32)
    noise = RandomGaussianNoise(1.0, max_std=10.0, seed=0)(flat, training=True).numpy() - 128.0
    spread = noise.reshape(16, -1).std(axis=1)
    assert spread.max() <= 10.5 and spread.min() < spread.max() and abs(noise.mean()) < 0.2


def test_each_image_is_blurred_with_its_own_normalised_kernel():
    kernels = RandomBlur(size=7, seed=2).kernels(6).numpy()
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(kernels, kernels[:, ::-1, ::-1], atol=1e-6)  # Gaussians and lines: point-symmetric
    assert len({round(float(k.max()), 4) for k in kernels}) == 6
    # a single bright pixel spreads into exactly its image's kernel (one depthwise pass over the batch)
    dots = np.zeros((6, 15, 15, 3), np.float32)
    dots[:, 7, 7, :] = 255.0
    blurred = RandomBlur(size=7).transform(dots, kernels).numpy()
    for image in range(6):
        for channel in range(3):
            np.testing.assert_allclose(blurred[image, 4:11, 4:11, channel], kernels[image] * 255.0, atol=1e-3)


def elastic(share, seed=0, **kwargs):
    """Flips and elastic distortion, no rotation: an image not drawn for the distortion is only flipped."""
    return RandomFlipRotation(0.0, elastic=share, seed=seed, **kwargs)


def test_elastic_moves_pixels_by_at_most_its_share_of_the_image_and_keeps_a_flat_image_flat():
    columns = np.tile(np.arange(64, dtype=np.float32), (4, 64, 1))[..., None].repeat(3, axis=-1)  # value = column
    flipped_only = elastic(0.0)(columns, training=True).numpy()  # the same flips: they are drawn first
    shift = np.abs(elastic(1.0, max_shift=0.03)(columns, training=True).numpy() - flipped_only)
    assert shift.max() <= 0.03 * 64 + 1e-3 and shift.mean() > 0.1  # a flipped ramp moves by its value's change
    flat = np.full((2, 32, 32, 3), 77.0, np.float32)
    np.testing.assert_allclose(elastic(1.0)(flat, training=True).numpy(), flat, rtol=1e-5)


def test_elastic_distorts_its_share_of_the_images_and_leaves_the_others_only_flipped():
    images = photos(16)
    flipped_only, distorted = (elastic(share, seed=5)(images, training=True).numpy() for share in (0.0, 0.5))
    untouched = [np.array_equal(distorted[i], flipped_only[i]) for i in range(16)]
    assert 0 < sum(untouched) < 16
    assert not np.array_equal(flipped_only, images)  # the flips did happen
    np.testing.assert_array_equal(elastic(1.0, seed=5)(images, training=False), images)


def test_clahe_equalises_each_tile_by_hand_computed_values():
    # half the pixels at 50, half at 200, in every tile: unclipped, the map sends 50 to 255 / 2 and 200 to 255
    image = np.full((1, 32, 32, 3), 50.0, np.float32)
    image[:, :, 1::2] = 200.0
    equalised = RandomCLAHE(1.0, clip_limit=1000.0, tiles=2, seed=0)(image, training=True).numpy()
    np.testing.assert_allclose(equalised[0, :, 0::2], 127.5, atol=1e-3)
    np.testing.assert_allclose(equalised[0, :, 1::2], 255.0, atol=1e-3)
    # clipped at 2 per grey level (2 x 256 pixels / 256 levels): 252 excess pixels spread over 256 levels, so
    # 50 maps to (51 x 252/256 + 2) x 255/256 and 200 to (201 x 252/256 + 4) x 255/256
    clipped = RandomCLAHE(1.0, clip_limit=2.0, tiles=2, seed=0)(image, training=True).numpy()
    np.testing.assert_allclose(clipped[0, :, 0::2], (51 * 252 / 256 + 2) * 255 / 256, atol=1e-3)
    np.testing.assert_allclose(clipped[0, :, 1::2], (201 * 252 / 256 + 4) * 255 / 256, atol=1e-3)


def test_clahe_agrees_with_opencv_within_a_grey_level():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:256, 0:256]
    grey = np.clip(60 + 0.4 * x + 30 * np.sin(y / 9) + rng.normal(0, 8, (256, 256)), 0, 255).astype(np.uint8)
    reference = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey).astype(np.float32)
    ours = RandomCLAHE(1.0, clip_limit=2.0, tiles=4, seed=0)(
        np.repeat(grey[None, ..., None], 3, axis=-1).astype(np.float32), training=True).numpy()[0, ..., 0]
    assert np.abs(ours - reference).mean() < 1.0 and np.abs(ours - reference).max() < 3.0
    assert np.abs(grey - reference).mean() > 20  # CLAHE changed this image a lot: agreeing means something


def test_the_heavy_preset_is_seeded_serialisable_and_refuses_an_unknown_name():
    images = photos(8, 32)
    one = build_augmentation(preset="heavy", seed=4)(images, training=True).numpy()
    again = build_augmentation(preset="heavy", seed=4)(images, training=True).numpy()
    np.testing.assert_array_equal(one, again)
    layers = build_augmentation(preset="heavy", seed=4).layers
    assert [type(layer).__name__ for layer in layers] == [
        "RandomFlipRotation", "RandomCLAHE", "RandomColorJitter", "RandomBlur", "RandomGaussianNoise", "RandomCutout"]
    assert layers[0].elastic == HEAVY_SHARE and build_augmentation(preset="standard").layers[0].elastic == 0.0
    restored = keras.Sequential.from_config(build_augmentation(preset="heavy", seed=4).get_config())
    np.testing.assert_array_equal(restored(images, training=True), one)  # the same layers with the same seeds
    with pytest.raises(ValueError, match="preset must be one of"):
        build_augmentation(preset="extreme")


@pytest.mark.parametrize("preset", PRESETS)
def test_every_random_stream_of_a_run_has_its_own_seed_mixup_included(preset):
    # MixUp once took seed + 2, which under the heavy preset is CLAHE's seed: both drew the same numbers
    augment, mixup = build_training_transforms(preset=preset, mixup=0.2, seed=7)
    seeds = [layer.seed for layer in augment.layers] + [mixup.seed]
    assert seeds == list(range(7, 7 + len(seeds)))
    assert build_training_transforms(preset=preset, seed=7)[1] is None  # no MixUp without an alpha


@pytest.mark.parametrize("make", [lambda: RandomFlipRotation(0.2, elastic=0.5, seed=2),
                                  lambda: RandomFlipRotation(quarter_turns=True, seed=2),
                                  lambda: RandomCLAHE(0.5, seed=2), lambda: RandomColorJitter(0.5, seed=2),
                                  lambda: RandomCutout(1.0, seed=2)],
                         ids=["flip-rotation-elastic", "quarter-turns", "clahe", "jitter", "cutout"])
def test_compiling_by_xla_changes_no_pixel(make):
    # these run compiled by XLA (several times faster on a CPU); run plainly they give the same
    images = photos(8, 40)
    compiled = make()(images, training=True).numpy()
    tf.config.run_functions_eagerly(True)
    try:
        plain = make()(images, training=True).numpy()
    finally:
        tf.config.run_functions_eagerly(False)
    np.testing.assert_allclose(compiled, plain, atol=1e-2)
    assert not np.allclose(compiled, images, atol=1.0)
