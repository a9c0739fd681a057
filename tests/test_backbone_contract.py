"""The contract every registered backbone keeps (as keras-hub's `run_backbone_test`): it builds at two image
sizes, trains a step, saves and reloads as a bundle with the same predictions, gives heatmaps of its feature
map's shape, is served by the web page, emits float32 logits under mixed precision, and names a top group that exists. A new registry
entry is covered here with nothing else to write."""

import keras
import numpy as np
import pytest
from PIL import Image

from defect_tf.apps.web_page import DefectApp
from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import load_bundle, save_bundle
from defect_tf.explain.heatmaps import GradCAM
from defect_tf.inference.predictor import Predictor
from defect_tf.models.classifier import backbone_of, build_classifier, set_trainable_top, top_layers
from defect_tf.models.registry import BACKBONES
from defect_tf.train.losses import MaskedFocalLoss

pytestmark = pytest.mark.integration
OUTPUTS = 3


def images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_contract(name, tmp_path):
    keras.utils.set_random_seed(0)
    for size in (32, 64):
        model = build_classifier(name, OUTPUTS, size, None, head="mlp", attention="spatial")
        assert tuple(model(images(2, size)).shape) == (2, OUTPUTS)

    # one training step moves the weights and keeps the loss finite (eagerly: tracing the step costs up to a minute)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=MaskedFocalLoss(0.0), run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    labels = np.array([[1, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], "float32")
    history = model.fit(images(4, 64), labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    # saved and reloaded in safe mode: the same logits
    # (thresholds 0: every attribute counts as detected, so the web page below draws every heatmap)
    save_bundle(tmp_path, model, BundleMetadata(["a", "b", "c"], 64, [0.0] * OUTPUTS, backbone=name))
    bundle = load_bundle(tmp_path)
    probe = images(2, 64, seed=1)
    np.testing.assert_allclose(bundle.model(probe, training=False), model(probe, training=False), rtol=1e-4, atol=1e-4)

    # heatmaps at the resolution of the backbone's heatmap layer
    cam = GradCAM(bundle.model, name)
    expected = tuple(backbone_of(bundle.model).get_layer(cam.layer).output.shape[1:3])
    assert cam.heatmaps(probe[0]).shape == (OUTPUTS, *expected)

    # the web page serves it: a photo gives its probabilities and a heatmap overlay per detected attribute
    photo = tmp_path / "photo.png"
    Image.fromarray(images(1, 80, seed=2)[0].astype("uint8")).save(photo)
    shown, table, gallery, message = DefectApp(Predictor(load_bundle(tmp_path))).analyse(str(photo))
    assert shown.shape == (80, 80, 3) and table.count("DETECTED") == OUTPUTS and message.startswith("Detected: a, b, c")
    assert [caption.split(" ")[0] for _, caption in gallery] == ["a", "b", "c"]
    assert all(overlay.shape == (80, 80, 3) for overlay, _ in gallery)

    # the registry's phase-2 group exists and leaves layers to train
    spec = BACKBONES[name]
    if spec.imagenet is not None:
        assert set_trainable_top(model, top_layers(model, spec.unfreeze), train_batchnorm=False) > 0


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_emits_float32_logits_under_mixed_precision(name):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_classifier(name, OUTPUTS, 32, None)
        logits = model(images(2, 32))
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
        assert backbone_of(model).compute_dtype == "float16"
        assert np.isfinite(float(MaskedFocalLoss(0.0)(np.eye(2, OUTPUTS, dtype="float32"), logits)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
