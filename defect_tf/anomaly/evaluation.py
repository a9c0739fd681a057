"""A localiser scored on labelled photos: image AUROC and the decision's accuracy, precision, recall and F1; with
masks, pixel AUROC, PRO (up to 30% false-positive rate), IoU and Dice of the outlines; the same per defect type.
The one report training's test split, evaluate.py and the benchmarks share."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from tqdm import tqdm

from defect_tf.anomaly.data import AnomalySet, read_mask
from defect_tf.anomaly.images import read_photo
from defect_tf.anomaly.store import Localizer
from defect_tf.evaluate.localisation import image_auroc, overlap_scores, pixel_auroc, pro_score
from defect_tf.evaluate.metrics import precision_recall_f1


def _image_figures(labels: np.ndarray, scores: np.ndarray, decided: np.ndarray) -> dict:
    tp, fp = int(np.sum(decided & labels)), int(np.sum(decided & ~labels))
    fn = int(np.sum(~decided & labels))
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {"photos": int(len(labels)), "defective": int(labels.sum()), "image_auroc": image_auroc(labels, scores),
            "accuracy": float(np.mean(decided == labels)), "precision": float(precision), "recall": float(recall),
            "f1": float(f1)}


def _pixel_figures(maps: list[np.ndarray], masks: list[np.ndarray], outlines: list[np.ndarray]) -> dict:
    if not maps or not any(mask.any() for mask in masks):
        return {}
    return {"pixel_auroc": pixel_auroc(maps, masks), "pro": pro_score(maps, masks),
            **overlap_scores(outlines, masks)}


def score_localizer(localizer: Localizer, anomaly_set: AnomalySet, rows: list[int],
                    progress: Callable = tqdm) -> dict:
    """Every figure over `rows` of the set, overall and per defect type (each type against the intact photos)."""
    labels, scores, decided, maps, masks, outlines, with_mask = [], [], [], [], [], [], []
    started = time.perf_counter()
    for row in progress(rows, desc="scoring", unit="photo", leave=False):
        image = anomaly_set.images[row]
        found = localizer.locate(read_photo(anomaly_set.path(row)))
        labels.append(bool(anomaly_set.defective[row]))
        scores.append(found.score)
        decided.append(found.defective)
        known = not labels[-1] or image in anomaly_set.masks
        with_mask.append(known)
        if known:
            maps.append(found.anomaly_map)
            outlines.append(found.mask)
            masks.append(read_mask(anomaly_set.masks[image]) if labels[-1] else np.zeros(found.mask.shape, bool))
    elapsed = time.perf_counter() - started
    labels, scores, decided, with_mask = map(np.asarray, (labels, scores, decided, with_mask))
    report = {**_image_figures(labels, scores, decided), **_pixel_figures(maps, masks, outlines),
              "ms_per_photo": 1000 * elapsed / max(len(rows), 1)}
    kinds = {anomaly_set.types.get(anomaly_set.images[row]) for row, label in zip(rows, labels) if label} - {None}
    per_type = {}
    mask_index = np.cumsum(with_mask) - 1
    for kind in sorted(kinds):
        keep = np.asarray([not label or anomaly_set.types.get(anomaly_set.images[row]) == kind
                           for row, label in zip(rows, labels)])
        chosen = [mask_index[i] for i in np.flatnonzero(keep & with_mask)]
        per_type[kind] = {**_image_figures(labels[keep], scores[keep], decided[keep]),
                          **_pixel_figures([maps[i] for i in chosen], [masks[i] for i in chosen],
                                           [outlines[i] for i in chosen])}
    if per_type:
        report["per_type"] = per_type
    return report


def describe(report: dict) -> str:
    """The report as a few printed lines."""
    def line(name: str, figures: dict) -> str:
        shown = [f"{key.replace('_', ' ')} {figures[key]:.3f}" for key in
                 ("image_auroc", "f1", "pixel_auroc", "pro", "iou", "dice") if key in figures]
        return f"  {name:<10} {figures['photos']:>5} photos ({figures['defective']} defective): " + ", ".join(shown)

    lines = [line("all", report)]
    lines += [line(kind, figures) for kind, figures in report.get("per_type", {}).items()]
    return "\n".join(lines)
