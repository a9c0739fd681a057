"""The anomaly model's two cuts, from a validation split: a photo is called defective when its score reaches the
image threshold, and its outline is the pixels whose score reaches the pixel threshold.

Two rules, recorded in the bundle. With intact validation photos only (the usual start): the image threshold is
the highest intact validation score (no false alarm on validation), the pixel threshold the PIXEL_QUANTILE of
their pixels (an outline is drawn only on a photo called defective). With defective validation photos and their
masks as well: each threshold maximises F1 on them (image F1 over photos, pixel F1 over pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

PIXEL_QUANTILE = 0.999  # of intact validation pixels: the outline's cut when no defect masks are known
INTACT_RULE, F1_RULE = "intact", "f1"


@dataclass(frozen=True)
class Thresholds:
    image: float
    pixel: float
    rule: str  # INTACT_RULE or F1_RULE


def best_f1_cut(scores: np.ndarray, truth: np.ndarray) -> float:
    """The score cut (positive when the score reaches it) with the highest F1; ties go to the higher cut."""
    order = np.argsort(-scores, kind="stable")
    scores, truth = scores[order], truth[order].astype(bool)
    tp = np.cumsum(truth)
    fp = np.cumsum(~truth)
    last = np.r_[scores[1:] != scores[:-1], True]  # a cut can only fall between distinct scores
    f1 = 2 * tp / (tp + fp + truth.sum())
    candidates = np.flatnonzero(last)
    return float(scores[candidates[np.argmax(f1[candidates])]])


def calibrate(intact_maps: Sequence[np.ndarray], defect_maps: Sequence[np.ndarray] = (),
              defect_masks: Sequence[np.ndarray] = (), image_score: Callable[[np.ndarray], float] = np.max
              ) -> Thresholds:
    """Thresholds from validation maps: intact ones (required) and defective ones with their masks (optional);
    `image_score`: the model's rule from a map to the photo's score."""
    if not intact_maps:
        raise ValueError("calibration needs intact validation photos")
    intact_scores = np.array([float(image_score(m)) for m in intact_maps])
    if not defect_maps:
        pixels = np.concatenate([np.asarray(m, np.float32).ravel() for m in intact_maps])
        return Thresholds(image=float(intact_scores.max()), pixel=float(np.quantile(pixels, PIXEL_QUANTILE)),
                          rule=INTACT_RULE)
    scores = np.r_[intact_scores, [float(image_score(m)) for m in defect_maps]]
    labels = np.r_[np.zeros(len(intact_maps)), np.ones(len(defect_maps))]
    pixel_scores = np.concatenate([np.asarray(m, np.float32).ravel() for m in [*intact_maps, *defect_maps]])
    pixel_truth = np.concatenate([np.zeros(m.size, bool) for m in intact_maps]
                                 + [np.asarray(t, bool).ravel() for t in defect_masks])
    return Thresholds(image=best_f1_cut(scores, labels), pixel=best_f1_cut(pixel_scores, pixel_truth), rule=F1_RULE)
