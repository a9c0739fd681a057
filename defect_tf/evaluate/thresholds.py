"""Per-attribute decision thresholds chosen on the validation split's precision-recall curve."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve

from defect_tf.data.labels import known_mask

NAIVE_THRESHOLD = 0.5  # the uncalibrated cut: the fallback here, and every report's reference column


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray, fallback: float = NAIVE_THRESHOLD) -> float:
    """The threshold with the highest F1 for one attribute's known labels (1/0) and scores.

    The cut is placed halfway between the lowest score still called positive and the next lower
    score, not on the score itself, so a test example just below a validation positive is not lost.
    Without both a positive and a negative the curve says nothing, and `fallback` is returned.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    if labels.size == 0 or labels.min() == labels.max():
        return float(fallback)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=precision + recall > 0)[:-1]
    cut = thresholds[int(np.argmax(f1))]
    below = scores[scores < cut]
    return float((cut + below.max()) / 2) if below.size else float(cut)


def calibrate_thresholds(labels: np.ndarray, scores: np.ndarray, fallback: float = NAIVE_THRESHOLD) -> np.ndarray:
    """`best_f1_threshold` for every attribute, using only its known labels."""
    known = known_mask(labels)
    return np.array([best_f1_threshold(labels[known[:, j], j], scores[known[:, j], j], fallback)
                     for j in range(labels.shape[1])], dtype=np.float32)
