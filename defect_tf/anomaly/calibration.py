"""The anomaly model's two cuts, from a validation split: a photo is called defective when its score reaches the
image threshold, and its outline is the pixels whose score reaches the pixel threshold.

The pixel threshold is the PIXEL_QUANTILE of intact validation photos' pixels (an outline is drawn only on a photo
called defective). The image threshold has two rules, recorded in the bundle: with intact validation photos only
(the usual start), their highest score (no false alarm on validation); with defective validation photos as well
(masks not needed), the cut with the highest image F1 over all of them.

Defect masks do not set the pixel threshold: the cut with the highest pixel F1 moves with the validation split's mix
of intact photos and defect types, which says nothing of the line's (docs/findings.md, "The outline's cut").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

PIXEL_QUANTILE = 0.999  # of intact validation pixels: the outline's cut
INTACT_RULE, F1_RULE = "intact", "f1"


@dataclass(frozen=True)
class Thresholds:
    image: float
    pixel: float
    rule: str  # the image threshold's: INTACT_RULE or F1_RULE (earlier versions' F1 rule set the pixel one by F1 too)


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


def calibrate(intact_maps: Sequence[np.ndarray], intact_scores: Sequence[float],
              defect_scores: Sequence[float] = ()) -> Thresholds:
    """Thresholds from validation photos: intact ones' maps and scores (required), defective ones' scores
    (optional; their maps do not set the outline's cut)."""
    if not intact_maps:
        raise ValueError("calibration needs intact validation photos")
    pixels = np.concatenate([np.asarray(m, np.float32).ravel() for m in intact_maps])
    pixel = float(np.quantile(pixels, PIXEL_QUANTILE))
    intact_scores = np.asarray(intact_scores, np.float64)
    if not len(defect_scores):
        return Thresholds(image=float(intact_scores.max()), pixel=pixel, rule=INTACT_RULE)
    scores = np.r_[intact_scores, np.asarray(defect_scores, np.float64)]
    labels = np.r_[np.zeros(len(intact_scores)), np.ones(len(defect_scores))]
    return Thresholds(image=best_f1_cut(scores, labels), pixel=pixel, rule=F1_RULE)
