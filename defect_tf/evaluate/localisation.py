"""How well anomaly maps outline the true defects: pixel AUROC and AP, PRO up to a false-positive rate, IoU, Dice and
coverage.

Small functions over lists of same-shaped map / mask pairs (one pair per photo, at the photo's own size; masks
True on defect pixels), shared by training's report, evaluate.py and the benchmarks. PRO is MVTec AD's
per-region overlap (Bergmann et al. 2021): each connected defect region counts equally, however small, so one
large defect cannot hide missed small ones. Coverage is the same per-region overlap at one cut, the outline's: the
share of each true defect region inside it, averaged over the regions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

PRO_MAX_FPR = 0.3  # MVTec AD's integration limit
PRO_THRESHOLDS = 2000  # thresholds of the PRO curve when there are more distinct scores (quantiles of the scores)


def _check_shapes(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> None:
    if len(maps) != len(masks) or any(np.shape(m) != np.shape(t) for m, t in zip(maps, masks)):
        raise ValueError("each anomaly map needs a mask of its own shape")


def _pixels(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    _check_shapes(maps, masks)
    return (np.concatenate([np.asarray(m, np.float32).ravel() for m in maps]),
            np.concatenate([np.asarray(t, bool).ravel() for t in masks]))


def _region_values(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The map's values inside each connected region of the masks (4-connected), region by region."""
    regions = []
    for anomaly_map, mask in zip(maps, masks):
        labelled, count = ndimage.label(np.asarray(mask, bool))
        regions += [np.asarray(anomaly_map, np.float32)[labelled == k] for k in range(1, count + 1)]
    return regions


def image_auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC of image scores against labels (1 defective, 0 intact); NaN without both kinds."""
    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def pixel_auroc(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """ROC AUC of every pixel's anomaly score against the masks, pooled over all photos; NaN without both kinds."""
    scores, truth = _pixels(maps, masks)
    return float(roc_auc_score(truth, scores)) if 0 < truth.sum() < truth.size else float("nan")


def pixel_rankings(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                   defective: Sequence[bool]) -> dict[str, float]:
    """How the defect pixels rank among all pixels, from one sort of them: the pixel AUROC (`pooled`, as
    `pixel_auroc`) and its two halves, the defect pixels ranked against the pixels of intact photos only
    (`intact_photos`: are defective parts told from intact ones?) and against the defect-free pixels of the
    defective photos only (`own_photos`: is the defect found within its photo?); and the pixels' `average_precision`
    (area under their precision-recall curve, as scikit-learn's: it is not lifted by the many easy intact pixels, so
    it shows how clean an outline can be). The pooled AUROC is its halves' mean weighted by how many pixels each
    holds. NaN for a figure without pixels. Ties count a half in the AUROCs, as in scikit-learn."""
    _check_shapes(maps, masks)
    scores = np.concatenate([np.asarray(m, np.float32).ravel() for m in maps])
    kinds = np.concatenate([np.where(np.asarray(t, bool).ravel(), 0, 2 if d else 1).astype(np.int8)
                            for t, d in zip(masks, defective)])  # 0 defect, 1 intact photo, 2 defective photo
    _, place = np.unique(scores, return_inverse=True)
    counts = [np.bincount(place[kinds == kind], minlength=int(place.max()) + 1).astype(np.float64)
              for kind in range(3)]  # per distinct score, lowest first

    def ranked(others: np.ndarray) -> float:
        if not counts[0].sum() or not others.sum():
            return float("nan")
        below = np.cumsum(others) - others
        return float(np.sum(counts[0] * (below + 0.5 * others)) / (counts[0].sum() * others.sum()))

    def average_precision() -> float:
        found, alarms = counts[0][::-1], (counts[1] + counts[2])[::-1]  # highest score first
        if not found.sum():
            return float("nan")
        precision = np.cumsum(found) / (np.cumsum(found) + np.cumsum(alarms))
        return float(np.sum(found * precision) / found.sum())

    return {"pooled": ranked(counts[1] + counts[2]), "intact_photos": ranked(counts[1]),
            "own_photos": ranked(counts[2]), "average_precision": average_precision()}


def pro_curve(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray],
              thresholds: int = PRO_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, mean per-region overlap) at each threshold, a pixel counting as anomalous when its
    score is at least the threshold. Every distinct score is a threshold when there are at most `thresholds` of
    them; otherwise the quantiles of the scores (the curve is then interpolated between them)."""
    scores, truth = _pixels(maps, masks)
    negatives = np.sort(scores[~truth])
    regions = [np.sort(values) for values in _region_values(maps, masks)]
    if not regions or not len(negatives):
        return np.array([np.nan]), np.array([np.nan])
    distinct = np.unique(scores)
    cuts = distinct if len(distinct) <= thresholds else np.unique(np.quantile(scores, np.linspace(0, 1, thresholds)))
    cuts = np.concatenate([cuts, [np.inf]])  # nothing anomalous: the curve starts at (0, 0)
    fpr = (len(negatives) - np.searchsorted(negatives, cuts, side="left")) / len(negatives)
    overlap = np.mean([(len(r) - np.searchsorted(r, cuts, side="left")) / len(r) for r in regions], axis=0)
    return fpr, overlap


def pro_score(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], max_fpr: float = PRO_MAX_FPR,
              thresholds: int = PRO_THRESHOLDS) -> float:
    """Area under the PRO curve up to `max_fpr`, divided by `max_fpr` (1.0 is perfect); NaN without defects."""
    fpr, overlap = pro_curve(maps, masks, thresholds)
    if np.isnan(fpr).any():
        return float("nan")
    order = np.lexsort((overlap, fpr))
    fpr, overlap = fpr[order], overlap[order]
    inside = fpr <= max_fpr
    x, y = fpr[inside], overlap[inside]
    if x[-1] < max_fpr and (~inside).any():  # the curve's value at the limit, between its neighbours
        after = np.argmax(~inside)
        x0, y0, x1, y1 = fpr[after - 1], overlap[after - 1], fpr[after], overlap[after]
        x, y = np.append(x, max_fpr), np.append(y, y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0))
    return float(np.trapezoid(y, x) / max_fpr)


def overlap_scores(predicted: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict[str, float]:
    """IoU and Dice of predicted defect pixels against the masks, pooled over all photos (false alarms on intact
    photos count), NaN when both are empty; coverage, the mean share of each true defect region inside the
    prediction (a missed region counts 0, false alarms do not count), NaN without defects."""
    found, truth = _pixels(predicted, masks)
    found = found > 0
    both, either = np.sum(found & truth), np.sum(found | truth)
    total = found.sum() + truth.sum()
    inside = [np.mean(values > 0) for values in _region_values(predicted, masks)]
    return {"iou": float(both / either) if either else float("nan"),
            "dice": float(2 * both / total) if total else float("nan"),
            "coverage": float(np.mean(inside)) if inside else float("nan")}
