"""The linear probe: the head's logit layer fitted to convergence on frozen features, before fine-tuning (LP-FT).

Kumar et al. (ICLR 2022, "Fine-Tuning can Distort Pretrained Features") show that fine-tuning from a poorly
trained head distorts the pretrained features, and that fitting the linear probe first, then fine-tuning, beats
both. The features are computed once (the backbone in inference mode, the head's own pooling, images not
augmented); the logits are then fitted by L-BFGS on the run's own loss (the task's masked loss: NA cells,
class weights and label smoothing as in training) plus an L2 penalty on the weights, chosen by k-fold
cross-validation on the training split. With gamma 0 that objective is convex: a logistic regression
(scikit-learn's, with C = 1 / (l2 × known labels)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import minimize

from defect_tf.data.labels import known_mask

PROBE_CHOICES = ("off", "on")
L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # penalties tried by cross-validation, weakest first
DEFAULT_L2 = 1e-3  # where the training split is too small to cross-validate
MAX_FOLDS = 5
MIN_FOLDS = 2  # and so at least two positives of every class: each fold holds one out
MAX_ITERATIONS = 1000
CROSS_VALIDATION_TOLERANCE = dict(maxiter=200, ftol=1e-6)  # ranking penalties needs less than the final fit
FINAL_TOLERANCE = dict(maxiter=MAX_ITERATIONS, gtol=1e-7, ftol=1e-12)


@dataclass(frozen=True)
class ProbeFit:
    """A fitted logit layer and how it was chosen."""

    kernel: np.ndarray  # features x outputs
    bias: np.ndarray  # outputs
    l2: float
    folds: int  # 0: the penalty was not cross-validated (too few images)
    training_loss: float  # the run's loss on the training split, without the penalty


def pooled_features(model: keras.Model, dataset) -> np.ndarray:
    """The vectors the head's logit layer reads (backbone in inference mode, the head's pooling), float32."""
    head = model.get_layer("head")
    features = keras.Model(model.inputs, head.pooled(head.input))
    return np.asarray(features.predict(dataset, verbose=0), dtype=np.float32)


def in_float64(loss: keras.losses.Loss) -> keras.losses.Loss:
    """The same loss computed in float64: L-BFGS's line search stalls on float32's rounding of the loss."""
    return type(loss).from_config({**loss.get_config(), "precision": "float64"})


def _objective(loss: keras.losses.Loss, features: np.ndarray, labels: np.ndarray, l2: float):
    """(flat parameters) -> (loss + l2/2 |W|^2, its gradient), all in float64."""
    loss = in_float64(loss)
    x = tf.constant(features, tf.float64)
    y = tf.constant(labels, tf.float64)
    n_features, n_outputs = features.shape[1], labels.shape[1]

    @tf.function
    def value_and_gradient(kernel, bias):
        with tf.GradientTape() as tape:
            tape.watch([kernel, bias])
            value = loss(y, tf.matmul(x, kernel) + bias) + 0.5 * l2 * tf.reduce_sum(kernel * kernel)
        return value, tape.gradient(value, [kernel, bias])

    def evaluate(flat: np.ndarray):
        kernel = tf.constant(flat[:-n_outputs].reshape(n_features, n_outputs), tf.float64)
        bias = tf.constant(flat[-n_outputs:], tf.float64)
        value, (kernel_gradient, bias_gradient) = value_and_gradient(kernel, bias)
        return float(value), np.concatenate([kernel_gradient.numpy().ravel(), bias_gradient.numpy().ravel()])

    return evaluate


def fit_logits(loss: keras.losses.Loss, features: np.ndarray, labels: np.ndarray, l2: float,
               start: np.ndarray | None = None, tolerance: dict = FINAL_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias minimising `loss`(labels, features @ kernel + bias) + l2/2 |kernel|^2 (L-BFGS)."""
    n_features, n_outputs = features.shape[1], labels.shape[1]
    flat = np.zeros(n_features * n_outputs + n_outputs) if start is None else start
    result = minimize(_objective(loss, features, labels, l2), flat, jac=True, method="L-BFGS-B", options=tolerance)
    return result.x[:-n_outputs].reshape(n_features, n_outputs), result.x[-n_outputs:]


def fold_of_each_image(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold numbers 0..folds-1, dealt out class by class (each image's first positive attribute) so every fold
    holds a share of every class; images without a known positive are dealt out as one more group."""
    positive = (labels == 1) & known_mask(labels)
    group = np.where(positive.any(axis=1), positive.argmax(axis=1), labels.shape[1])
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=int)
    offset = 0
    for value in np.unique(group):
        members = rng.permutation(np.flatnonzero(group == value))
        fold[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return fold


def cross_validation_folds(labels: np.ndarray) -> int:
    """How many folds the training labels allow: at most one per positive of the rarest class, so every fold holds
    one out (0: fewer than two)."""
    counts = ((labels == 1) & known_mask(labels)).sum(axis=0)
    smallest = int(counts[counts > 0].min(initial=len(labels)))  # the rarest class's positives
    return min(MAX_FOLDS, smallest) if smallest >= MIN_FOLDS else 0


def choose_l2(loss: keras.losses.Loss, features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, int]:
    """The grid penalty with the lowest held-out loss over k folds of the training split, and k (0: too few
    images, DEFAULT_L2)."""
    folds = cross_validation_folds(labels)
    if not folds:
        return DEFAULT_L2, 0
    fold = fold_of_each_image(labels, folds, seed)
    held_out = np.zeros(len(L2_GRID))
    for k in range(folds):
        train, test = fold != k, fold == k
        start = None
        for index in reversed(range(len(L2_GRID))):  # strongest first: each warm-starts the next
            kernel, bias = fit_logits(loss, features[train], labels[train], L2_GRID[index], start,
                                      CROSS_VALIDATION_TOLERANCE)
            start = np.concatenate([kernel.ravel(), bias])
            logits = features[test] @ kernel + bias
            held_out[index] += float(loss(labels[test], logits.astype(np.float32)))
    return L2_GRID[int(np.argmin(held_out))], folds


def fit_probe(loss: keras.losses.Loss, features: np.ndarray, labels: np.ndarray, seed: int) -> ProbeFit:
    """The logit layer fitted on every training image with the cross-validated penalty."""
    labels = labels.astype(np.float32)
    l2, folds = choose_l2(loss, features, labels, seed)
    kernel, bias = fit_logits(loss, features, labels, l2)
    training_loss = float(loss(labels, (features @ kernel + bias).astype(np.float32)))
    return ProbeFit(kernel.astype(np.float32), bias.astype(np.float32), l2, folds, training_loss)


def run_probe(model: keras.Model, loss: keras.losses.Loss, dataset, labels: np.ndarray, seed: int, log) -> ProbeFit:
    """Fit the head of `model` on the frozen features of `dataset` (its images in the order of `labels`) and put
    the fit into the model's logit layer."""
    started = time.time()
    features = pooled_features(model, dataset)
    extracted = time.time() - started
    fit = fit_probe(loss, features, labels, seed)
    logits = model.get_layer("head").logits
    logits.kernel.assign(fit.kernel)
    logits.bias.assign(fit.bias)
    how = f"{fit.folds}-fold cross-validated" if fit.folds else "default: too few images to cross-validate"
    log(f"  features of {len(features)} training images in {extracted:.1f} s; logits fitted in "
        f"{time.time() - started - extracted:.1f} s, L2 {fit.l2:g} ({how}), training loss {fit.training_loss:.4f}")
    return fit
