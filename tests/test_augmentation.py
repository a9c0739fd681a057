import keras
import numpy as np
import pytest

from defect_tf.data.augmentation import RandomCutout, RandomFlipRotation, build_augmentation


def numbered_images(count: int, size: int = 5) -> np.ndarray:
    """Images whose pixels are all different, so any flip or move shows."""
    image = np.arange(size * size * 3, dtype=np.float32).reshape(size, size, 3)
    return np.repeat(image[None], count, axis=0)


def test_without_rotation_each_image_is_exactly_one_of_the_four_flips():
    images = numbered_images(64)
    out = RandomFlipRotation(max_turn=0.0, seed=0)(images, training=True).numpy()
    image = images[0]
    flips = [image, image[:, ::-1], image[::-1, :], image[::-1, ::-1]]
    seen = set()
    for result in out:
        matches = [k for k, flipped in enumerate(flips) if np.allclose(result, flipped, atol=1e-3)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_quarter_turns_give_each_image_exactly_one_of_its_eight_orientations():
    images = numbered_images(128, 6)
    out = RandomFlipRotation(quarter_turns=True, seed=0)(images, training=True).numpy()
    image = images[0]
    orientations = [np.rot90(flipped, k) for flipped in (image, image[:, ::-1]) for k in range(4)]
    seen = set()
    for result in out:
        matches = [k for k, oriented in enumerate(orientations) if np.array_equal(result, oriented)]
        assert len(matches) == 1  # pixels moved, none interpolated
        seen.add(matches[0])
    assert seen == set(range(8))


def test_build_augmentation_names_its_rotation_modes():
    layer = build_augmentation("quarter", cutout=False).layers[0]
    assert layer.quarter_turns and layer.get_config()["quarter_turns"]
    assert not build_augmentation().layers[0].quarter_turns
    with pytest.raises(ValueError, match="rotation must be one of"):
        build_augmentation("diagonal")


def test_rotation_reflects_at_the_borders_instead_of_leaving_black_corners():
    flat = np.full((16, 32, 32, 3), 77.0, np.float32)
    out = RandomFlipRotation(max_turn=0.2, seed=1)(flat, training=True).numpy()
    np.testing.assert_allclose(out, 77.0, atol=1e-3)
    rotated = RandomFlipRotation(max_turn=0.2, seed=1)(numbered_images(16, 9), training=True).numpy()
    assert not any(np.allclose(r, numbered_images(1, 9)[0]) for r in rotated)  # every image moved


def test_augmentation_is_off_outside_training():
    images = numbered_images(4)
    for layer in (RandomFlipRotation(seed=0), RandomCutout(probability=1.0, seed=0), build_augmentation(seed=0)):
        np.testing.assert_array_equal(layer(images, training=False), images)


def test_cutout_erases_one_rectangle_of_the_chosen_area_in_every_chosen_image():
    images = np.full((32, 40, 40, 3), -1.0, np.float32)  # noise is in [0, 255], so erased pixels show
    out = RandomCutout(probability=1.0, area=(0.01, 0.06), seed=3)(images, training=True).numpy()
    for result in out:
        erased = (result != -1.0).any(axis=-1)
        rows, columns = np.flatnonzero(erased.any(axis=1)), np.flatnonzero(erased.any(axis=0))
        height, width = rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1
        assert erased.sum() == height * width  # one solid rectangle
        assert 0.005 <= erased.sum() / (40 * 40) <= 0.08  # 1-6% of the image, give or take rounding
        assert (0.0 <= result[erased]).all() and (result[erased] <= 255.0).all()


@pytest.mark.parametrize("probability, expected", [(0.0, 0), (1.0, 200)])
def test_cutout_probability_decides_how_many_images_are_erased(probability, expected):
    images = np.full((200, 16, 16, 1), -1.0, np.float32)
    out = RandomCutout(probability=probability, seed=0)(images, training=True).numpy()
    assert int((out != -1.0).any(axis=(1, 2, 3)).sum()) == expected


def test_half_of_the_images_get_a_cutout_by_default():
    images = np.full((400, 16, 16, 1), -1.0, np.float32)
    erased = int((RandomCutout(seed=0)(images, training=True).numpy() != -1.0).any(axis=(1, 2, 3)).sum())
    assert 160 <= erased <= 240  # binomial(400, 0.5): 5 standard deviations either side


def test_a_seed_repeats_the_augmentation_and_layers_reload_from_their_config():
    images = numbered_images(8, 12)
    first = build_augmentation(seed=4)(images, training=True).numpy()
    np.testing.assert_array_equal(first, build_augmentation(seed=4)(images, training=True).numpy())
    assert not np.array_equal(first, build_augmentation(seed=5)(images, training=True).numpy())
    for layer in (RandomFlipRotation(0.1, seed=2), RandomFlipRotation(quarter_turns=True), RandomCutout(0.3, area=(0.02, 0.04), seed=2)):
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_cutout_noise_takes_every_grey_level_about_equally_often():
    images = np.full((64, 64, 64, 1), -1.0, np.float32)
    out = RandomCutout(probability=1.0, area=(0.2, 0.25), seed=1)(images, training=True).numpy()
    erased = out[out != -1.0]
    assert np.array_equal(erased, np.round(erased))  # whole grey levels, as in a photo
    counts = np.bincount(erased.astype(int), minlength=256)
    assert len(counts) == 256 and counts.min() > 0
    expected = len(erased) / 256  # ~230 per level; 5 standard deviations of a binomial count either side
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)


@pytest.mark.parametrize("quarter_turns", [False, True])
def test_the_resampling_is_tensorflows_affine_transform_with_reflected_borders(quarter_turns):
    # our own gather-based resampling (XLA compiles it, not TensorFlow's ImageProjectiveTransform) moves every
    # pixel as TensorFlow's kernel does, non-square images and borders included
    images = np.random.default_rng(0).uniform(0, 255, (8, 24, 40, 3)).astype(np.float32)
    ours = RandomFlipRotation(0.2, quarter_turns=quarter_turns, seed=3)(images, training=True).numpy()
    a0, a1, b0, b1 = np.moveaxis(RandomFlipRotation(0.2, quarter_turns=quarter_turns, seed=3).random_matrices(8), 1, 0)
    cx, cy, zeros = (40 - 1) / 2, (24 - 1) / 2, np.zeros(8)
    transform = np.stack([a0, a1, cx - a0 * cx - a1 * cy, b0, b1, cy - b0 * cx - b1 * cy, zeros, zeros], axis=1)
    interpolation = "nearest" if quarter_turns else "bilinear"
    reference = keras.ops.image.affine_transform(images, transform.astype(np.float32), interpolation=interpolation,
                                                 fill_mode="reflect").numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-2)
