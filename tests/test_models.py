import keras
import numpy as np
import pytest

from defect_tf.errors import WeightsError
from defect_tf.models.classifier import backbone_of, build_classifier, resolve_weights, set_trainable_top
from defect_tf.models.registry import BACKBONES


def test_classifier_emits_one_float32_logit_per_attribute():
    model = build_classifier("efficientnet_b0", 4, 32, None)
    logits = model(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
    assert tuple(logits.shape) == (2, 4) and keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert backbone_of(model).get_layer(BACKBONES["efficientnet_b0"].cam_layer) is not None


def test_mixed_float16_policy_still_gives_float32_logits_and_finite_loss():
    from defect_tf.train.losses import MaskedFocalLoss

    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = build_classifier("efficientnet_b0", 3, 32, None)
        images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
        logits = model(images)
        assert backbone_of(model).compute_dtype == "float16"
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
        loss = MaskedFocalLoss(gamma=2.0)(np.array([[1, 0, -1], [0, -1, 1]], "float32"), logits)
        assert np.isfinite(float(loss))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_freezing_keeps_the_top_layers_trainable_and_batchnorm_frozen():
    model = build_classifier("efficientnet_b0", 2, 32, None)
    base = backbone_of(model)
    assert set_trainable_top(model, 0, train_batchnorm=False) == 0 and not base.trainable
    trainable = set_trainable_top(model, 27, train_batchnorm=False)
    top = base.layers[-27:]
    assert trainable == sum(not isinstance(layer, keras.layers.BatchNormalization) for layer in top)
    assert all(not layer.trainable for layer in base.layers[:-27])
    assert all(not layer.trainable for layer in top if isinstance(layer, keras.layers.BatchNormalization))
    assert set_trainable_top(model, None, train_batchnorm=True) == len(base.layers)
    assert model.get_layer("head").trainable


def test_weights_none_and_backbones_without_imagenet_weights():
    assert resolve_weights("efficientnet_b0", "none") is None
    with pytest.raises(WeightsError, match="no ImageNet weights for small_cnn"):
        resolve_weights("small_cnn", "imagenet")


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="nope.h5: file not found; use imagenet, none, or a path"):
        resolve_weights("efficientnet_b0", str(tmp_path / "nope.h5"))


def test_local_weights_file_is_loaded(tmp_path):  # (EfficientNet's files: tests/test_pretrained.py)
    source = build_classifier("small_cnn", 2, 32, None)
    path = tmp_path / "backbone.weights.h5"
    backbone_of(source).save_weights(path)
    model = build_classifier("small_cnn", 2, 32, resolve_weights("small_cnn", str(path)))
    for expected, actual in zip(backbone_of(source).get_weights(), backbone_of(model).get_weights()):
        np.testing.assert_array_equal(expected, actual)


@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_the_head_pools_the_feature_map_as_asked(pooling, reduce):
    model = build_classifier("small_cnn", 2, 32, None, pooling=pooling)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    feature_map = backbone_of(model)(images, training=False)
    pooled = model.get_layer("head").pooled(feature_map).numpy()
    np.testing.assert_allclose(pooled, reduce(feature_map.numpy(), axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_unknown_pooling_or_head_is_refused():
    with pytest.raises(ValueError, match="pooling must be one of avg, max, not 'median'"):
        build_classifier("small_cnn", 2, 32, None, pooling="median")
    with pytest.raises(ValueError, match="head must be one of linear, mlp, not 'kan'"):
        build_classifier("small_cnn", 2, 32, None, head="kan")


def test_the_mlp_head_with_spatial_attention_computes_its_definition():
    from defect_tf.models.heads import MLP_UNITS

    model = build_classifier("small_cnn", 3, 32, None, head="mlp", attention="spatial", dropout=0.0)
    head = model.get_layer("head")
    features = backbone_of(model)(np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32"),
                                  training=False).numpy()
    # gate = sigmoid(conv7x7([channel mean, channel max])); logits = relu(mean_hw(A * gate) W1 + b1) W2 + b2
    summary = np.concatenate([features.mean(-1, keepdims=True), features.max(-1, keepdims=True)], axis=-1)
    gate = head.spatial.gate(summary).numpy()
    pooled = (features * gate).mean(axis=(1, 2))
    w1, b1 = head.hidden.get_weights()
    w2, b2 = head.logits.get_weights()
    assert w1.shape == (features.shape[-1], MLP_UNITS)
    expected = np.maximum(pooled @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(head(features).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert 0 < gate.min() and gate.max() < 1
