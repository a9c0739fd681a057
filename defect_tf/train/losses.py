"""Masked focal losses (per-attribute sigmoid; softmax over classes) for labels with unknowns (NA), and class weights."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from defect_tf.data.labels import known_mask

MAX_CLASS_WEIGHT = 10.0


@dataclass(frozen=True)
class LossSettings:
    """The loss a run asked for; each task builds its own loss from it (defaults: train/config.py)."""

    gamma: float  # focal: 0 is plain cross-entropy
    alpha: float | None  # sigmoid focal: positives weigh alpha, negatives 1 - alpha; None: no such weighting
    class_weights: bool  # weigh rare classes up, from the training split
    label_smoothing: float  # softmax: share of each target spread over every class


def _share_of_known_mean(per_image, known_count):
    """Each image's loss scaled so that their mean over the batch (Keras's reduction) is their sum divided by
    `known_count`: the mean over the known labels."""
    batch = ops.cast(ops.shape(per_image)[0], per_image.dtype)
    return per_image * batch / ops.maximum(known_count, 1.0)


@keras.saving.register_keras_serializable(package="defect_tf")
class MaskedFocalLoss(keras.losses.Loss):
    """Binary focal loss on logits, averaged over the known (non-NA) label entries only.

    NA entries (label -1) add exactly zero loss and zero gradient, and the mean is taken over the
    known entries, so a batch with many NA is not trained with a smaller gradient. `gamma=0` gives
    masked binary cross-entropy. Optional per-attribute weights scale positive and negative terms, and
    `alpha` (Lin et al., 2017) weighs every positive term by alpha and every negative one by 1 - alpha.
    `call` returns each image's part of that mean, scaled by batch / known entries, so that Keras's mean over the
    batch gives the mean over known entries (its per-entry reduction would divide by all entries, known or not),
    and Keras scales it for a run over several replicas (a scalar it would leave unscaled, doubling the gradient
    on two replicas).
    Always computed in float32, also under a mixed-precision policy (`precision` "float64": for the linear probe,
    whose line search needs values finer than float32's).
    """

    def __init__(self, gamma: float, positive_weights=None, negative_weights=None, alpha: float | None = None,
                 name: str = "masked_focal_loss", precision: str = "float32", **kwargs):
        kwargs.pop("reduction", None)
        kwargs.pop("dtype", None)
        super().__init__(name=name, reduction="sum_over_batch_size", dtype=precision, **kwargs)
        self.precision = precision
        self.gamma = float(gamma)
        self.positive_weights = None if positive_weights is None else [float(w) for w in positive_weights]
        self.negative_weights = None if negative_weights is None else [float(w) for w in negative_weights]
        self.alpha = None if alpha is None else float(alpha)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, self.precision)
        logits = ops.cast(y_pred, self.precision)
        known = ops.cast(known_mask(y_true), self.precision)
        target = ops.where(known > 0, y_true, 0.0)  # 0 / 1, or a soft target in between (MixUp)
        # In log space, from the logits: p = sigmoid(z), so each term -(1 - p_correct)^gamma * log(p_correct) stays
        # finite, and so does its gradient, where the sigmoid saturates (1 - p_correct == 0 in float32 would give
        # 0 * inf = NaN for gamma < 1, plain BCE included). A soft target t weighs the positive term by t and the
        # negative one by 1 - t; for t = 0 or 1 this is the usual focal loss.
        positive_term = -ops.exp(self.gamma * ops.log_sigmoid(-logits)) * ops.log_sigmoid(logits)
        negative_term = -ops.exp(self.gamma * ops.log_sigmoid(logits)) * ops.log_sigmoid(-logits)
        positive_weight, negative_weight = target, 1.0 - target
        if self.positive_weights is not None:
            positive_weight = positive_weight * ops.convert_to_tensor(self.positive_weights, self.precision)
            negative_weight = negative_weight * ops.convert_to_tensor(self.negative_weights, self.precision)
        if self.alpha is not None:
            positive_weight, negative_weight = positive_weight * self.alpha, negative_weight * (1.0 - self.alpha)
        per_entry = positive_weight * positive_term + negative_weight * negative_term
        return _share_of_known_mean(ops.sum(per_entry * known, axis=-1), ops.sum(known))

    def get_config(self) -> dict:
        return {"name": self.name, "gamma": self.gamma, "alpha": self.alpha, "precision": self.precision,
                "positive_weights": self.positive_weights, "negative_weights": self.negative_weights}


def attribute_class_weights(values: np.ndarray, max_weight: float = MAX_CLASS_WEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute, weights for positive and negative labels from the known labels ("balanced").

    weight = known / (2 * count), so a rare class counts as much in total as a common one;
    clipped to [1 / max_weight, max_weight] so an attribute with a handful of positives cannot
    dominate training. An attribute with no known labels gets weight 1 for both.
    """
    known = known_mask(values)
    n_known = known.sum(axis=0).astype(np.float64)
    n_positive = ((values == 1) & known).sum(axis=0)
    n_negative = n_known - n_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = np.where(n_known > 0, n_known / (2.0 * n_positive), 1.0)
        negative = np.where(n_known > 0, n_known / (2.0 * n_negative), 1.0)
    clip = lambda w: np.clip(w, 1.0 / max_weight, max_weight).astype(np.float32)
    return clip(positive), clip(negative)


@keras.saving.register_keras_serializable(package="defect_tf")
class MaskedCategoricalFocalLoss(keras.losses.Loss):
    """Softmax focal cross-entropy over classes, averaged over the images whose class is known.

    Labels are one-hot rows (or blends of two, from MixUp); a row with no known class (all NA) adds exactly zero
    loss and gradient. `call` returns each image's part of the mean, as MaskedFocalLoss does.
    `gamma=0` gives cross-entropy; `label_smoothing` moves that share of the target evenly onto every
    class; optional per-class weights scale each image by its true class's weight. `precision` as for
    MaskedFocalLoss.
    """

    def __init__(self, gamma: float, label_smoothing: float = 0.0, class_weights=None,
                 name: str = "masked_categorical_focal_loss", precision: str = "float32", **kwargs):
        kwargs.pop("reduction", None)
        kwargs.pop("dtype", None)
        super().__init__(name=name, reduction="sum_over_batch_size", dtype=precision, **kwargs)
        self.precision = precision
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, self.precision)
        log_probabilities = ops.log_softmax(ops.cast(y_pred, self.precision), axis=-1)
        target = ops.maximum(y_true, 0.0)  # one-hot, or a blend of two classes (MixUp); an unknown row is all 0
        known = ops.cast(ops.sum(target, axis=-1) > 0, self.precision)
        n_classes = ops.cast(ops.shape(y_true)[-1], self.precision)
        smoothed = target * (1.0 - self.label_smoothing) + self.label_smoothing / n_classes
        cross_entropy = -ops.sum(smoothed * log_probabilities, axis=-1)
        # (1 - p_true)^gamma, p_true the probability given to the target (its expectation for a blend)
        p_true = ops.sum(target * ops.exp(log_probabilities), axis=-1)
        per_image = ops.exp(self.gamma * ops.log1p(-ops.minimum(p_true, 1.0 - 1e-7))) * cross_entropy
        if self.class_weights is not None:
            per_image = per_image * ops.sum(target * ops.convert_to_tensor(self.class_weights, self.precision), axis=-1)
        return _share_of_known_mean(per_image * known, ops.sum(known))

    def get_config(self) -> dict:
        return {"name": self.name, "gamma": self.gamma, "label_smoothing": self.label_smoothing,
                "class_weights": self.class_weights, "precision": self.precision}


def class_weights_of(values: np.ndarray, max_weight: float = MAX_CLASS_WEIGHT) -> np.ndarray:
    """Per class, known / (classes * count) over one-hot rows ("balanced"), clipped to [1 / max_weight, max_weight];
    a class without an image gets weight 1."""
    counts = (values == 1).sum(axis=0).astype(np.float64)
    n_known = counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(counts > 0, n_known / (len(counts) * counts), 1.0)
    return np.clip(weights, 1.0 / max_weight, max_weight).astype(np.float32)
