import cv2
import numpy as np
import pytest
import tensorflow as tf

from defect_tf.data.augmentation import build_augmentation
from defect_tf.data.images import load_image
from defect_tf.data.pipeline import make_dataset


def test_grayscale_rgba_and_bmp_become_three_channel_float_images(tmp_path):
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((20, 30), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.full((20, 30, 4), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "color.bmp"), np.full((20, 30, 3), 50, np.uint8))
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.full((40, 40, 3), 120, np.uint8))
    for name, value in [("gray.png", 200), ("rgba.png", 100), ("color.bmp", 50), ("photo.jpg", 120)]:
        image = load_image(str(tmp_path / name), 16)
        assert image.shape == (16, 16, 3) and image.dtype == tf.float32
        assert float(tf.reduce_mean(image)) == pytest.approx(value, abs=2)


def test_dataset_shapes_and_dtypes(tiny_demo):
    root, table = tiny_demo
    paths = [str(root / "images" / name) for name in table.images]
    images, labels = next(iter(make_dataset(paths, table.values, 32, 8)))
    assert images.shape == (8, 32, 32, 3) and images.dtype == tf.float32
    assert labels.shape == (8, 4) and labels.dtype == tf.float32
    np.testing.assert_array_equal(labels.numpy(), table.values[:8])
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0


def test_augmentation_changes_training_batches_but_not_validation_batches(tiny_demo):
    root, table = tiny_demo
    paths = [str(root / "images" / name) for name in table.images]
    plain = next(iter(make_dataset(paths, table.values, 32, 48)))[0].numpy()
    validation = make_dataset(paths, table.values, 32, 48)
    assert np.array_equal(next(iter(validation))[0].numpy(), next(iter(validation))[0].numpy())

    training = iter(make_dataset(paths, table.values, 32, 48, training=True, augment=build_augmentation(seed=1), seed=1))
    epoch_one, labels_one = (t.numpy() for t in next(training))
    epoch_two, _ = (t.numpy() for t in next(training))  # one batch is one epoch here
    assert not np.array_equal(epoch_one, epoch_two)  # reshuffled and re-augmented every epoch
    # the same images are there (as a multiset of labels), but the pixels are no longer the plain ones
    assert sorted(map(tuple, labels_one)) == sorted(map(tuple, table.values))
    assert not any(np.allclose(epoch_one[0], plain[i], atol=1) for i in range(48))


def test_the_seed_fixes_shuffle_and_augmentation(tiny_demo):
    root, table = tiny_demo
    paths = [str(root / "images" / name) for name in table.images]

    def first_two_batches(seed):
        batches = iter(make_dataset(paths, table.values, 32, 8, training=True, augment=build_augmentation(seed=seed),
                                    seed=seed))
        return [tuple(t.numpy() for t in next(batches)) for _ in range(2)]

    one, again, other = first_two_batches(5), first_two_batches(5), first_two_batches(6)
    for (images, labels), (images_again, labels_again) in zip(one, again):
        np.testing.assert_array_equal(images, images_again)
        np.testing.assert_array_equal(labels, labels_again)
    assert not np.array_equal(one[0][0], other[0][0])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_honoured_like_pillow_does(tmp_path, orientation):
    from PIL import Image, ImageOps

    from defect_tf.data.images import exif_orientations, read_image

    pixels = np.zeros((16, 24, 3), np.uint8)  # wide, with a distinct quadrant pattern
    pixels[:8, :12] = (255, 0, 0)
    pixels[8:, 12:] = (0, 0, 255)
    pixels[:8, 12:] = (0, 255, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(pixels).save(path, exif=exif)
    assert exif_orientations([str(path)])[0] == orientation
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((8, 8), Image.NEAREST))
    ours = read_image(str(path), 8)
    np.testing.assert_allclose(ours[1::4, 1::4], upright[1::4, 1::4].astype(np.float32), atol=40)


@pytest.mark.parametrize("orientation, method", [(2, "FLIP_LEFT_RIGHT"), (3, "ROTATE_180"), (4, "FLIP_TOP_BOTTOM"),
                                                 (5, "TRANSPOSE"), (6, "ROTATE_270"), (7, "TRANSVERSE"),
                                                 (8, "ROTATE_90")])
def test_each_exif_orientation_moves_every_pixel_exactly_as_pillow_does(orientation, method):
    from PIL import Image

    from defect_tf.data.images import apply_orientation

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).transpose(getattr(Image.Transpose, method)))
    np.testing.assert_array_equal(apply_orientation(tf.constant(pixels), orientation).numpy(), expected)


def test_turning_images_upright_uses_no_transpose_op():
    # In a tf.data graph on this project's CPUs any Transpose op made TensorFlow print "E0000 ... oneDNN supports
    # DT_UINT8 only on platforms with AVX-512" on every training run, though nothing was wrong.
    from defect_tf.data.images import apply_orientation

    graph = tf.function(apply_orientation).get_concrete_function(
        tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32)).graph.as_graph_def()
    ops = {node.op for node in graph.node} | {node.op for function in graph.library.function
                                              for node in function.node_def}
    assert "Case" in ops or "StatelessCase" in ops  # the branches were looked into
    assert not {"Transpose", "ConjugateTranspose"} & ops


def test_no_pipeline_runs_tf_data_autotuning(tiny_demo):
    # The autotuner's thread made every finished iterator wait 1-30 s on 2 cores (see fixed_tuning).
    root, table = tiny_demo
    paths = [str(root / "images" / name) for name in table.images]
    training = make_dataset(paths, table.values, 32, 8, training=True, augment=build_augmentation(seed=0))
    assert training.options().autotune.enabled is False
    assert make_dataset(paths, table.values, 32, 8).options().autotune.enabled is False
