"""How well the heatmaps (explain/heatmaps.py) point at the true defect, on images whose defect masks are known.

Scored only for correctly detected defects (true label 1, probability over the calibrated
threshold): a heatmap for a missed defect says nothing about localisation. Two figures per
attribute: how often the heatmap's peak falls inside the true region, and the mean IoU between
the heatmap thresholded at half its peak and the true region. Both at the mask's resolution.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from defect_tf.bundle.store import Bundle
from defect_tf.data.images import read_photo, resize_image
from defect_tf.data.labels import LabelTable
from defect_tf.errors import ImageError
from defect_tf.explain.heatmaps import GradCAM, upsample
from defect_tf.inference.predictor import predict_probabilities

HEATMAP_LEVEL = 0.5  # the heatmap region is where it reaches half its peak


def peak_inside(heatmap: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the heatmap's highest point, at the mask's resolution, lies on the mask."""
    resized = upsample(heatmap, *mask.shape)
    y, x = np.unravel_index(np.argmax(resized), resized.shape)
    return bool(mask[y, x])


def heatmap_iou(heatmap: np.ndarray, mask: np.ndarray, level: float = HEATMAP_LEVEL) -> float:
    """IoU between the region where the heatmap reaches `level` of its peak and the mask (0 if both are empty)."""
    region = upsample(heatmap, *mask.shape) >= level * max(float(heatmap.max()), 1e-12)
    truth = mask.astype(bool)
    union = np.logical_or(region, truth).sum()
    return float(np.logical_and(region, truth).sum() / union) if union else 0.0


def read_mask(path: str | Path) -> np.ndarray:
    """A defect mask PNG as a boolean array (non-zero = defect)."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ImageError(f"{path}: cannot read mask")
    return mask > 0


def score_localisation(bundle: Bundle, data_dir: str | Path, table: LabelTable, mask_for,
                       layer: str | None = None, method: str | None = None) -> dict:
    """Peak-inside rate and mean IoU per attribute and overall, over correctly detected defects.

    `mask_for(image, attribute)` gives the path of the mask of that defect in that image; `layer` and
    `method` override the backbone's heatmap layer and method.
    """
    cam = GradCAM(bundle.model, bundle.metadata.backbone, layer, method)
    photos = [read_photo(str(Path(data_dir) / image)) for image in table.images]
    inputs = np.stack([resize_image(photo, bundle.image_size).numpy() for photo in photos])
    probabilities = predict_probabilities(bundle.model, inputs, bundle.task)
    detected = bundle.task.decide(probabilities, bundle.thresholds, bundle.untrained_mask)
    hits = {name: [] for name in bundle.attributes}
    ious = {name: [] for name in bundle.attributes}
    for row, image in enumerate(table.images):
        found = [j for j in range(len(bundle.attributes)) if detected[row, j] and table.values[row, j] == 1]
        for j, heatmap in zip(found, cam.heatmaps(inputs[row], found)):
            mask = read_mask(mask_for(image, bundle.attributes[j]))
            hits[bundle.attributes[j]].append(peak_inside(heatmap, mask))
            ious[bundle.attributes[j]].append(heatmap_iou(heatmap, mask))

    def summary(hit_list, iou_list) -> dict:
        n = len(hit_list)
        return {"defects": n, "peak_inside": float(np.mean(hit_list)) if n else None,
                "mean_iou": float(np.mean(iou_list)) if n else None}

    return {"per_attribute": {name: summary(hits[name], ious[name]) for name in bundle.attributes},
            "overall": summary(sum(hits.values(), []), sum(ious.values(), []))}
