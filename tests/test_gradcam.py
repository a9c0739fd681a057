import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_tf.explain.heatmaps import GradCAM, overlay, upsample
from defect_tf.models.classifier import backbone_of, build_classifier


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    return build_classifier("small_cnn", 3, 32, None)


def image(seed=0, size=32):
    return np.random.default_rng(seed).uniform(0, 255, (size, size, 3)).astype("float32")


def test_heatmap_is_the_logit_weighted_feature_map_for_a_pooled_dense_head():
    # EfficientNet-B0's Grad-CAM map is the backbone's output. With global average pooling then a dense
    # layer, d logit_k / d A_c = W[c, k] / (h * w) everywhere, so Grad-CAM reduces to ReLU(sum_c W[c, k] A_c).
    keras.utils.set_random_seed(0)
    classifier = build_classifier("efficientnet_b0", 3, 96, None)
    feature_map = backbone_of(classifier)(image(0, 96)[None], training=False).numpy()[0]
    dense = classifier.get_layer("head").logits.kernel.numpy()
    maps = GradCAM(classifier, "efficientnet_b0").heatmaps(image(0, 96))
    assert maps.shape == (3, 3, 3)  # 96 px / 32
    for k in range(3):
        expected = np.maximum(feature_map @ dense[:, k], 0)
        expected = expected / expected.max() if expected.max() > 0 else expected
        np.testing.assert_allclose(maps[k], expected, atol=1e-4)


def test_layercam_weighs_each_position_by_its_positive_gradient_for_a_pooled_dense_head(classifier):
    # The same set-up on small_cnn's last map (its backbone output): G_c = W[c, k] / (h * w) at every position, so
    # LayerCAM = ReLU(sum_c ReLU(W[c, k]) A_c) up to scale: only the channels that raise logit k count, where
    # Grad-CAM lets the others subtract.
    feature_map = backbone_of(classifier)(image(0)[None], training=False).numpy()[0]
    dense = classifier.get_layer("head").logits.kernel.numpy()
    maps = GradCAM(classifier, "small_cnn", layer="stage4_conv2_relu", method="layercam").heatmaps(image(0))
    assert maps.shape == (3, 4, 4)  # 32 px / 8
    for k in range(3):
        expected = np.maximum(feature_map @ np.maximum(dense[:, k], 0), 0)
        np.testing.assert_allclose(maps[k], expected / expected.max(), atol=1e-4)


def test_layercam_on_an_earlier_map_equals_its_definition_per_attribute(classifier):
    cam = GradCAM(classifier, "small_cnn", layer="stage2_conv2_relu", method="layercam")
    together = cam.heatmaps(image(4), [1, 2])
    assert together.shape == (2, 16, 16)  # stage 2: 32 px / 2
    for row, k in enumerate([1, 2]):
        with tf.GradientTape() as tape:
            conv_map, logits = cam.model(image(4)[None], training=False)
            logit = logits[0, k]
        alone = tf.nn.relu(tf.reduce_sum(tf.nn.relu(tape.gradient(logit, conv_map)) * conv_map, axis=-1))[0].numpy()
        np.testing.assert_allclose(together[row], alone / alone.max(), atol=1e-4)


def test_an_unknown_heatmap_method_is_refused(classifier):
    with pytest.raises(ValueError, match="gradcam, layercam"):
        GradCAM(classifier, "small_cnn", method="scorecam")


def test_all_attributes_at_once_equal_one_gradient_per_attribute(classifier):
    cam = GradCAM(classifier, "small_cnn")
    together = cam.heatmaps(image(1), [2, 0, 1])
    for row, k in enumerate([2, 0, 1]):
        with tf.GradientTape() as tape:
            conv_map, logits = cam.model(image(1)[None], training=False)
            logit = logits[0, k]
        weights = tf.reduce_mean(tape.gradient(logit, conv_map), axis=(1, 2), keepdims=True)
        alone = tf.nn.relu(tf.reduce_sum(weights * conv_map, axis=-1))[0].numpy()
        expected = alone / alone.max() if alone.max() > 0 else alone  # no positive evidence: an all-zero map
        np.testing.assert_allclose(together[row], expected, atol=1e-4)
    assert together.max() == 1.0  # at least one has evidence, so the comparison says something


def test_heatmaps_work_on_efficientnet_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_classifier("efficientnet_lite0", 2, 64, None)
        maps = GradCAM(model, "efficientnet_lite0").heatmaps(image(2, 64))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert maps.shape == (2, 8, 8) and maps.dtype == np.float32  # block5_expand_activation: 1/8 of the side
    assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1


def test_small_cnn_heatmaps_have_a_quarter_of_the_input_side(classifier):
    cam = GradCAM(classifier, "small_cnn")
    assert cam.heatmaps(image()).shape == (3, 8, 8)  # stage 3: 32 px / 4
    assert cam.heatmaps(image(), []).shape == (0, 8, 8)


def test_overlay_keeps_the_original_resolution_and_colours_hot_regions_red():
    photo = np.full((60, 90, 3), 128, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1.0
    drawn = overlay(photo, heatmap)
    assert drawn.shape == (60, 90, 3) and drawn.dtype == np.uint8
    hot, cold = drawn[2, 2].astype(int), drawn[-2, -2].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red where the heatmap peaks, blue where it is zero
    assert upsample(heatmap, 60, 90).shape == (60, 90)
