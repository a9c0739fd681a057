"""Per-attribute classification metrics that ignore NA labels exactly as the loss does.

Small functions over NumPy arrays (labels: 1 / 0 / -1 for NA; scores: probabilities). Every caller
(training's summary, evaluate.py, benchmarks) uses these, so there is one definition of each metric.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from defect_tf.data.labels import known_mask

INTERVAL_LEVEL = 0.95  # every ROC-AUC's interval


def _safe_divide(numerator, denominator):
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def confusion_counts(labels: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Per attribute: true/false positives/negatives over known labels, support (known positives), NA count."""
    known = known_mask(labels)
    positive, predicted = labels == 1, predicted.astype(bool)
    return {
        "tp": (known & positive & predicted).sum(axis=0),
        "fp": (known & ~positive & predicted).sum(axis=0),
        "fn": (known & positive & ~predicted).sum(axis=0),
        "tn": (known & ~positive & ~predicted).sum(axis=0),
        "support": (known & positive).sum(axis=0),
        "na": (~known).sum(axis=0),
    }


def precision_recall_f1(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts; 0 where undefined (as scikit-learn's zero_division=0)."""
    tp, fp, fn = (np.asarray(x, float) for x in (tp, fp, fn))
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, tp + fn)
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    return precision, recall, f1


def exact_match(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Share of images whose known labels are all predicted right (images with no known label are skipped)."""
    known = known_mask(labels)
    has_known = known.any(axis=1)
    correct = np.where(known, (labels == 1) == predicted.astype(bool), True).all(axis=1)
    return float(correct[has_known].mean()) if has_known.any() else float("nan")


def top1_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """For single-label images (exactly one known 1): how often the highest score is that attribute.

    The usual accuracy of a multi-class data set such as NEU; NaN when no image has exactly one 1.
    """
    single = (labels == 1).sum(axis=1) == 1
    if not single.any():
        return float("nan")
    return float((np.argmax(scores[single], axis=1) == np.argmax(labels[single] == 1, axis=1)).mean())


def _per_attribute_score(score_fn, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Apply a ranking metric to each attribute's known labels; NaN where it has only one class."""
    known = known_mask(labels)
    result = np.full(labels.shape[1], np.nan)
    for j in range(labels.shape[1]):
        y = labels[known[:, j], j]
        if 0 < y.sum() < len(y):
            result[j] = score_fn(y, scores[known[:, j], j])
    return result


def average_precision(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-attribute average precision (area under the precision-recall curve) over known labels."""
    return _per_attribute_score(average_precision_score, labels, scores)


def average_precision_intervals(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute, the AP's interval over known labels (lows, highs): AP is a mean of precisions, one at each
    positive image's rank, so it is read as a proportion of the positives and given Wilson's interval (Boyd et
    al. 2013's binomial interval in score form: not a point at AP 1); NaN where an attribute has one class."""
    positives, ap = ((labels == 1) & known_mask(labels)).sum(axis=0), average_precision(labels, scores)
    lows, highs = np.full(len(ap), np.nan), np.full(len(ap), np.nan)
    for j in np.flatnonzero(~np.isnan(ap)):
        lows[j], highs[j] = proportion_interval(ap[j] * positives[j], int(positives[j]))
    return lows, highs


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-attribute ROC-AUC over known labels."""
    return _per_attribute_score(roc_auc_score, labels, scores)


def proportion_interval(successes: float, trials: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """Wilson's score interval of a proportion (an accuracy): unlike the normal approximation it stays within 0-1
    and does not shrink to a point at 0 or 1; NaN without trials."""
    if trials <= 0:
        return float("nan"), float("nan")
    z2, share = float(norm.ppf((1 + level) / 2)) ** 2, successes / trials
    centre = (share + z2 / (2 * trials)) / (1 + z2 / trials)
    half = np.sqrt(z2 * share * (1 - share) / trials + z2 * z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def f1_interval(tp: int, fp: int, fn: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """F1's interval. F1 = 2J / (1 + J), where J = tp / (tp + fp + fn) is the share of true positives among the
    images that are positive or called so; given how many those are, tp is binomial in J, so Wilson's interval of
    J, mapped through that rising curve, holds F1 about as often as it says, even near 1, where the delta method's
    normal interval shrinks to a point; NaN without such images."""
    low, high = proportion_interval(tp, tp + fp + fn, level)
    return 2 * low / (1 + low), 2 * high / (1 + high)


def f1_intervals(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute, `f1_interval` from its counts (lows, highs)."""
    intervals = [f1_interval(int(a), int(b), int(c)) for a, b, c in zip(tp, fp, fn)]
    lows, highs = zip(*intervals) if intervals else ((), ())
    return np.asarray(lows, float), np.asarray(highs, float)


def _auc_variance(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's variance of an AUC from `positives` and `negatives` images (their exponential model for
    the pairs sharing an image), both counts replaced by their mean in those terms so that it depends on the AUC
    alone (Newcombe 2006)."""
    pairs = (positives + negatives) / 2 - 1
    return auc * (1 - auc) / (positives * negatives) * (1 + pairs * (1 - auc) / (2 - auc) + pairs * auc / (1 + auc))


def roc_auc_interval(labels: Sequence[int], scores: Sequence[float],
                     level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """The ROC-AUC's score-type interval: the AUCs from which the observed one lies within `level`'s normal
    quantile of standard deviations (`_auc_variance`), as Wilson's interval does for a proportion. Unlike a
    bootstrap it does not shrink to a point when every positive outscores every negative, and it holds the true
    AUC at least as often as it says with few positives (tests/test_metrics.py); NaN without both kinds."""
    labels = np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan"), float("nan")
    auc = float(roc_auc_score(labels, scores))
    z = float(norm.ppf((1 + level) / 2))

    def outside(candidate: float) -> float:  # > 0 where `auc` is too far from `candidate` to have come from it
        return (auc - candidate) ** 2 - z * z * _auc_variance(candidate, positives, negatives)

    inside = min(max(auc, 1e-12), 1 - 1e-12)  # where `outside` is negative
    low = 0.0 if auc == 0 else brentq(outside, 0.0, inside)
    high = 1.0 if auc == 1 else brentq(outside, inside, 1.0)
    return float(low), float(high)


def roc_auc_intervals(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per attribute, `roc_auc`'s interval over known labels (lows, highs); NaN where it has one class."""
    known = known_mask(labels)
    intervals = [roc_auc_interval(labels[known[:, j], j], scores[known[:, j], j]) for j in range(labels.shape[1])]
    lows, highs = zip(*intervals) if intervals else ((), ())
    return np.asarray(lows, float), np.asarray(highs, float)


def scored_attributes(labels: np.ndarray) -> np.ndarray:
    """Attributes with at least one known label: only these can be scored or enter an average."""
    return known_mask(labels).any(axis=0)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def classification_report(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Per-attribute precision / recall / F1 (with its 95% interval) / support / NA, their macro, micro and
    weighted averages, and exact-match accuracy, for binary predictions (1 = detected).

    An attribute with no known label in `labels` has no score (NaN) and stays out of the macro average,
    instead of counting as F1 0.
    """
    counts = confusion_counts(labels, predicted)
    precision, recall, f1 = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
    scored = scored_attributes(labels)
    f1_low, f1_high = f1_intervals(counts["tp"], counts["fp"], counts["fn"])
    precision, recall, f1, f1_low, f1_high = (np.where(scored, values, np.nan)
                                              for values in (precision, recall, f1, f1_low, f1_high))
    micro = precision_recall_f1(counts["tp"].sum(), counts["fp"].sum(), counts["fn"].sum())
    support = counts["support"].astype(float)
    weights = support / support.sum() if support.sum() > 0 else np.zeros_like(support)
    return {
        "per_attribute": {"precision": precision, "recall": recall, "f1": f1, "f1_low": f1_low, "f1_high": f1_high,
                          "support": counts["support"], "na": counts["na"]},
        "macro": {"precision": _mean(precision[scored]), "recall": _mean(recall[scored]), "f1": _mean(f1[scored])},
        "micro": {"precision": float(micro[0]), "recall": float(micro[1]), "f1": float(micro[2])},
        "weighted": {"precision": float(precision[scored] @ weights[scored]),
                     "recall": float(recall[scored] @ weights[scored]), "f1": float(f1[scored] @ weights[scored])},
        "exact_match": exact_match(labels, predicted),
    }


def class_indices(labels: np.ndarray) -> np.ndarray:
    """Per image, the index of its one positive class, or -1 where no class is known (multi-class labels)."""
    positive = labels == 1
    return np.where(positive.sum(axis=1) == 1, np.argmax(positive, axis=1), -1)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of [true class, predicted class] over images with a known class (`truth` -1 is left out)."""
    known = truth >= 0
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth[known], predicted[known]), 1)
    return matrix


def top_k_accuracy(truth: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of images with a known class whose class is among the `k` highest scores (NaN: none known)."""
    known = truth >= 0
    if not known.any():
        return float("nan")
    top = np.argsort(-scores[known], axis=1, kind="stable")[:, :k]
    return float((top == truth[known, None]).any(axis=1).mean())


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """One attribute's recall (true-positive rate), false-positive rate and precision at `threshold`, over its
    known labels, each with Wilson's 95% interval (`_low`, `_high`), and its F1 with `f1_interval`: what a binary
    detector does on the line."""
    known = known_mask(labels)
    positive, detected = labels[known] == 1, scores[known] >= threshold
    tp, fp = int((positive & detected).sum()), int((~positive & detected).sum())
    negatives, positives = int((~positive).sum()), int(positive.sum())
    return {"threshold": threshold, **rate("recall", tp, positives), **rate("false_positive_rate", fp, negatives),
            **rate("precision", tp, tp + fp), **f1_figure(tp, fp, positives - tp)}


def rate(name: str, hits: int, trials: int) -> dict[str, float]:
    """{name: hits / trials, name_low, name_high: its Wilson interval}; NaN without trials."""
    low, high = proportion_interval(hits, trials)
    return {name: hits / trials if trials else float("nan"), f"{name}_low": low, f"{name}_high": high}


def f1_figure(tp: int, fp: int, fn: int) -> dict[str, float]:
    """{"f1": its value (0 where undefined, as `precision_recall_f1`), "f1_low", "f1_high": `f1_interval`}."""
    low, high = f1_interval(tp, fp, fn)
    return {"f1": float(precision_recall_f1(tp, fp, fn)[2]), "f1_low": low, "f1_high": high}
