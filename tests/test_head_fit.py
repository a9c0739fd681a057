"""The linear probe (train/head_fit.py): the run's own loss fitted by L-BFGS is scikit-learn's logistic regression,
with NA cells left out and class weights applied exactly as training applies them."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from defect_tf.data.labels import NA
from defect_tf.train.head_fit import cross_validation_folds, fit_logits, fit_probe, fold_of_each_image
from defect_tf.train.losses import (
    MaskedCategoricalFocalLoss,
    MaskedFocalLoss,
    attribute_class_weights,
    class_weights_of,
)

L2 = 0.05


def _features(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_multiclass_fit_is_sklearn_multinomial_logistic_regression_with_class_weights_and_unknown_rows():
    x = _features(40, 5, 0)
    classes = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 0.8)  # 3 unbalanced classes
    one_hot = np.eye(3, dtype=np.float32)[classes]
    one_hot[[3, 17, 29]] = NA  # three images whose class is unknown: they must not count
    known = one_hot.max(axis=1) > 0
    weights = class_weights_of(one_hot[known])
    kernel, bias = fit_logits(MaskedCategoricalFocalLoss(0.0, class_weights=weights), x, one_hot, L2)

    # ours: mean over the known images of weight x cross-entropy + L2/2 |W|^2, so C = 1 / (L2 x known images)
    reference = LogisticRegression(C=1.0 / (L2 * known.sum()), class_weight=dict(enumerate(weights)), tol=1e-10,
                                   max_iter=10_000).fit(x[known].astype(np.float64), classes[known])
    np.testing.assert_allclose(kernel.T, reference.coef_, atol=1e-5)
    # softmax is unchanged by a constant added to every class's bias; scikit-learn's sum to zero
    np.testing.assert_allclose(bias - bias.mean(), reference.intercept_ - reference.intercept_.mean(), atol=1e-5)


def test_multilabel_fit_is_one_sklearn_logistic_regression_per_attribute_on_its_known_cells():
    x = _features(50, 4, 1)
    values = np.stack([x[:, 0] > 0.3, x[:, 1] - x[:, 2] > 0], axis=1).astype(np.float32)
    rng = np.random.default_rng(2)
    values[rng.random(values.shape) < 0.3] = NA  # 30% of the cells unknown
    positive, negative = attribute_class_weights(values)
    kernel, bias = fit_logits(MaskedFocalLoss(0.0, positive, negative), x, values, L2)

    known_cells = (values != NA).sum()  # the loss is a mean over every known cell, of every attribute
    for a in range(values.shape[1]):
        rows = values[:, a] != NA
        reference = LogisticRegression(C=1.0 / (L2 * known_cells), class_weight={1: positive[a], 0: negative[a]},
                                       tol=1e-10, max_iter=10_000).fit(x[rows].astype(np.float64), values[rows, a].astype(int))
        np.testing.assert_allclose(kernel[:, a], reference.coef_[0], atol=1e-5)
        assert bias[a] == pytest.approx(reference.intercept_[0], abs=1e-5)


def test_folds_hold_out_every_class_and_are_capped_by_the_rarest_class():
    one_hot = np.eye(3, dtype=np.float32)[[0] * 8 + [1] * 8 + [2] * 3]
    assert cross_validation_folds(one_hot) == 3  # the rarest class has 3 images: one held out per fold
    folds = fold_of_each_image(one_hot, 3, seed=0)
    for k in range(3):
        assert set(one_hot[folds == k].argmax(axis=1)) == {0, 1, 2}
    assert cross_validation_folds(np.eye(3, dtype=np.float32)[[0] * 8 + [1] * 8 + [2]]) == 0  # one image: no fold
    assert cross_validation_folds(np.eye(2, dtype=np.float32)[[0] * 30 + [1] * 30]) == 5


def test_probe_separates_what_a_line_separates_and_says_how_its_penalty_was_chosen():
    x = _features(60, 6, 3)
    classes = (x[:, 0] > 0).astype(int)
    fit = fit_probe(MaskedCategoricalFocalLoss(0.0), x, np.eye(2, dtype=np.float32)[classes], seed=0)
    assert fit.folds == 5
    assert np.array_equal((x @ fit.kernel + fit.bias).argmax(axis=1), classes)


def test_linear_probe_setting_is_refused_where_there_is_no_linear_head_on_pretrained_features(tmp_path):
    from defect_tf.errors import DefectTFError
    from defect_tf.train.config import TrainConfig

    with pytest.raises(DefectTFError, match=r"--linear-probe on fits a linear head .* --weights none --head mlp"):
        TrainConfig(data=str(tmp_path), linear_probe="on", weights="none", head="mlp").validate()
    TrainConfig(data=str(tmp_path), linear_probe="on", warmup_epochs=0, finetune_epochs=0).validate()  # probe only


@pytest.mark.integration
def test_a_pretrained_run_starts_from_the_probe_fitted_on_its_own_training_images(tiny_demo, tmp_path):
    """Phase 1 fits the head on the frozen features of exactly the training split's images and labels, with the run's
    loss: refitting it from the saved model's backbone gives the saved logit layer; the history records it."""
    import json

    from defect_tf.bundle.store import load_bundle
    from defect_tf.data.labels import parse_labels
    from defect_tf.data.pipeline import make_dataset
    from defect_tf.data.splits import read_split
    from defect_tf.tasks import get_task
    from defect_tf.train.config import TrainConfig
    from defect_tf.train.head_fit import pooled_features
    from defect_tf.train.losses import LossSettings
    from defect_tf.train.trainer import train

    root, _ = tiny_demo
    output = tmp_path / "out"
    config = TrainConfig(data=str(root / "images"), labels=str(root / "labels.txt"), output=str(output),
                         backbone="efficientnet_lite0", weights="imagenet", image_size=32, batch_size=8,
                         linear_probe="on", warmup_epochs=0, finetune_epochs=0, small_validation="hold-out")
    train(config, log=lambda *_: None)

    history = json.loads((output / "history.json").read_text())
    assert [(row["epoch"], row["phase"]) for row in history] == [(0, "linear probe")]
    assert history[0]["seconds"] > 0 and history[0]["val_loss"] > 0

    table, split = parse_labels(root / "labels.txt"), read_split(output / "split.txt")
    train_rows = [i for i, image in enumerate(table.images) if split[image] == "train"]
    files = [str(root / "images" / table.images[i]) for i in train_rows]
    task = get_task("multilabel")
    labels = task.prepare(table.values[train_rows])
    model = load_bundle(output).model
    features = pooled_features(model, make_dataset(files, labels, 32, 8))
    loss, _ = task.loss(labels, table.attributes, LossSettings(0.0, None, True, 0.0))
    refit = fit_probe(loss, features, labels, seed=config.seed)
    logits = model.get_layer("head").logits
    np.testing.assert_allclose(np.asarray(logits.kernel), refit.kernel, atol=1e-4)
    np.testing.assert_allclose(np.asarray(logits.bias), refit.bias, atol=1e-4)
