"""A localiser scored on labelled photos: image AUROC and AP and the decision's accuracy, precision, recall and F1;
with masks, pixel AUROC and AP, PRO (up to 30% false-positive rate), IoU, Dice and coverage of the outlines; the
same per defect type. The one report training's test split, evaluate.py and the benchmarks share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from defect_tf.anomaly.data import AnomalySet, read_mask
from defect_tf.anomaly.images import read_photo
from defect_tf.anomaly.pipeline import TwoStage, damage_score, stage_one_damaged
from defect_tf.anomaly.store import Localizer
from defect_tf.evaluate.localisation import image_auroc, overlap_scores, pixel_rankings, pro_score
from defect_tf.evaluate.metrics import (
    average_precision,
    average_precision_intervals,
    f1_figure,
    precision_recall_f1,
    proportion_interval,
    roc_auc_interval,
)
from defect_tf.evaluate.report import interval_text
from defect_tf.progress_bar import progress_bar

# a report's headline figures
FIGURES = ("image_auroc", "image_ap", "f1", "pixel_auroc", "pixel_ap", "pro", "iou", "dice", "coverage")
OUTLINES_FILE = "outlines.png"  # test photos with their outlines and true defects, beside the report
SCORES_FILE = "scores.png"  # the photos' image scores against the threshold, and the ROC curve, beside the report


def _image_figures(labels: np.ndarray, scores: np.ndarray, decided: np.ndarray) -> dict:
    tp, fp = int(np.sum(decided & labels)), int(np.sum(decided & ~labels))
    fn = int(np.sum(~decided & labels))
    precision, recall, _ = precision_recall_f1(tp, fp, fn)
    low, high = roc_auc_interval(labels, scores)
    as_column = labels.astype(int)[:, None], scores[:, None]
    (ap,), ((ap_low,), (ap_high,)) = average_precision(*as_column), average_precision_intervals(*as_column)
    (precision_low, precision_high), (recall_low, recall_high) = (proportion_interval(tp, tp + fp),
                                                                  proportion_interval(tp, tp + fn))
    return {"photos": int(len(labels)), "defective": int(labels.sum()), "called_defective": int(decided.sum()),
            "image_auroc": image_auroc(labels, scores), "image_auroc_low": low, "image_auroc_high": high,
            "image_ap": float(ap), "image_ap_low": float(ap_low), "image_ap_high": float(ap_high),
            "accuracy": float(np.mean(decided == labels)), "precision": float(precision),
            "precision_low": precision_low, "precision_high": precision_high, "recall": float(recall),
            "recall_low": recall_low, "recall_high": recall_high, **f1_figure(tp, fp, fn)}


def _pixel_figures(maps: list[np.ndarray], masks: list[np.ndarray], outlines: list[np.ndarray],
                   defective: list[bool]) -> dict:
    if not maps or not any(mask.any() for mask in masks):
        return {}
    ranked = pixel_rankings(maps, masks, defective)
    return {"pixel_auroc": ranked["pooled"], "pixel_auroc_intact_photos": ranked["intact_photos"],
            "pixel_auroc_own_photos": ranked["own_photos"], "pixel_ap": ranked["average_precision"],
            "pro": pro_score(maps, masks), **overlap_scores(outlines, masks)}


@dataclass
class Scored:
    """What one method said about each photo of a test set, and the truth: the input of every report."""

    images: list[str] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)  # defective
    scores: list[float] = field(default_factory=list)
    decided: list[bool] = field(default_factory=list)  # called defective
    maps: dict[int, np.ndarray] = field(default_factory=dict)  # photo index -> anomaly map (photos with known masks)
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    outlines: dict[int, np.ndarray] = field(default_factory=dict)

    def add(self, image: str, label: bool, score: float, decided: bool, anomaly_map: np.ndarray | None = None,
            mask: np.ndarray | None = None, outline: np.ndarray | None = None) -> None:
        index = len(self.images)
        self.images.append(image)
        self.labels.append(bool(label))
        self.scores.append(float(score))
        self.decided.append(bool(decided))
        if anomaly_map is not None and mask is not None:
            self.maps[index], self.masks[index], self.outlines[index] = anomaly_map, mask, outline


def summarise(scored: Scored, types: dict[str, str] | None = None) -> dict:
    """Every figure, overall and per defect type (each type's photos against all intact ones)."""
    labels, scores, decided = (np.asarray(x) for x in (scored.labels, scored.scores, scored.decided))

    def figures(keep: np.ndarray) -> dict:
        chosen = [i for i in np.flatnonzero(keep) if i in scored.maps]
        return {**_image_figures(labels[keep], scores[keep], decided[keep]),
                **_pixel_figures([scored.maps[i] for i in chosen], [scored.masks[i] for i in chosen],
                                 [scored.outlines[i] for i in chosen], [bool(labels[i]) for i in chosen])}

    report = figures(np.ones(len(labels), bool))
    kinds = sorted({(types or {}).get(image) for image, label in zip(scored.images, labels) if label} - {None})
    if kinds:
        report["per_type"] = {kind: figures(~labels | np.asarray([types.get(image) == kind for image in scored.images]))
                              for kind in kinds}
    return report


def shown_photos(scored: Scored, types: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """The photos an outline gallery shows, as (index, title): per defect type the photos whose outline covers the
    least, the median and the most of their defect, then the intact photo with the largest outline, if any; none
    without a defect whose mask is known."""
    kinds: dict[str, list[tuple[float, int]]] = {}
    for index, mask in scored.masks.items():
        if scored.labels[index] and mask.any():
            kind = (types or {}).get(scored.images[index], "defective")
            kinds.setdefault(kind, []).append((float(scored.outlines[index][mask].mean()), index))
    if not kinds:
        return []
    shown = []
    for kind, photos in sorted(kinds.items()):
        photos.sort()
        for place in dict.fromkeys((0, len(photos) // 2, len(photos) - 1)):
            covered, index = photos[place]
            shown.append((index, f"{kind}: {covered:.0%} covered"))
    alarms = [(float(outline.mean()), index) for index, outline in scored.outlines.items()
              if not scored.labels[index] and outline.any()]
    if alarms:
        share, index = max(alarms)
        shown.append((index, f"intact: {share:.1%} outlined"))
    return shown


def score_localizer(localizer: Localizer, anomaly_set: AnomalySet, rows: list[int],
                    progress: Callable = progress_bar, gallery: Path | None = None,
                    score_plot: Path | None = None) -> dict:
    """Every figure over `rows` of the set, overall and per defect type, with the time per photo; with `gallery`
    (a path the caller has claimed), a PNG there of chosen photos' outlines against their true defects, or no file
    there when no mask is known (an earlier one is removed); with `score_plot` (claimed too), a PNG there of the
    photos' image scores against the threshold when both intact and defective photos were scored (else none)."""
    scored = Scored()
    started = time.perf_counter()
    for row in progress(rows, desc="scoring", unit="photo", leave=False):
        found = localizer.locate(read_photo(anomaly_set.path(row)))
        scored.add(anomaly_set.images[row], bool(anomaly_set.defective[row]), found.score, found.defective,
                   found.anomaly_map, true_mask(anomaly_set, row, found.mask.shape), found.mask)
    elapsed = time.perf_counter() - started
    shown = shown_photos(scored, anomaly_set.types) if gallery is not None else []
    if gallery is not None:
        gallery.unlink(missing_ok=True)
    if shown:
        from defect_tf.evaluate.plots import plot_outlines

        plot_outlines([read_photo(anomaly_set.path(rows[index])) for index, _ in shown],
                      [scored.masks[index] for index, _ in shown], [scored.outlines[index] for index, _ in shown],
                      [title for _, title in shown], gallery)
    if score_plot is not None:
        score_plot.unlink(missing_ok=True)
        if len(set(scored.labels)) == 2:
            from defect_tf.evaluate.plots import plot_image_scores

            plot_image_scores(np.asarray(scored.labels), np.asarray(scored.scores),
                              localizer.metadata.image_threshold, score_plot)
    return {**summarise(scored, anomaly_set.types), "ms_per_photo": 1000 * elapsed / max(len(rows), 1)}


def true_mask(anomaly_set: AnomalySet, row: int, shape: tuple[int, int]) -> np.ndarray | None:
    """The photo's true mask: its mask file, all False for an intact photo, None for a defect without a mask."""
    image = anomaly_set.images[row]
    if not anomaly_set.defective[row]:
        return np.zeros(shape, bool)
    return read_mask(anomaly_set.masks[image]) if image in anomaly_set.masks else None


def score_two_stages(pipeline: TwoStage, anomaly_set: AnomalySet, rows: list[int], batch_size: int = 32,
                     progress: Callable = progress_bar) -> dict:
    """The pipeline over `rows`: stage 1 decides and ranks (its damage score), stage 2 outlines only the photos
    stage 1 calls damaged (a photo it calls intact has an empty map and outline). The same figures as a localiser."""
    scored, task = Scored(), pipeline.classifier.metadata.task
    started = time.perf_counter()
    with progress(None, total=len(rows), desc="two stages", unit="photo", leave=False) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            paths = {str(anomaly_set.path(row)): row for row in chunk}
            answers, _ = pipeline.answer(list(paths))
            for answer in answers:
                row = paths[answer.image]
                found = answer.localization
                shape = found.mask.shape if found is not None else read_photo(answer.image).shape[:2]
                scored.add(anomaly_set.images[row], bool(anomaly_set.defective[row]),
                           damage_score(answer.prediction, task), stage_one_damaged(answer.prediction, task),
                           found.anomaly_map if found is not None else np.zeros(shape, np.float32),
                           true_mask(anomaly_set, row, shape),
                           found.mask if found is not None else np.zeros(shape, bool))
            bar.update(len(chunk))
    elapsed = time.perf_counter() - started
    return {**summarise(scored, anomaly_set.types), "ms_per_photo": 1000 * elapsed / max(len(rows), 1)}


def _split_of(figures: dict) -> str:
    """The pixel AUROC's two halves, as printed after it (none where a half is unknown)."""
    halves = [figures.get("pixel_auroc_intact_photos", np.nan), figures.get("pixel_auroc_own_photos", np.nan)]
    if np.isnan(halves).any():
        return ""
    return f" (against intact photos {halves[0]:.3f}, within defective photos {halves[1]:.3f})"


def _interval_of(figures: dict, name: str) -> str:
    """A figure's interval (the image AUROC's, AP's), as printed after it (none where it is unknown)."""
    interval = interval_text(figures.get(f"{name}_low"), figures.get(f"{name}_high"))
    return f" ({interval})" if interval else ""


def _f1_details_of(figures: dict) -> str:
    """The F1's interval, and the decision's precision and recall with theirs, as printed after the F1."""
    parts = [interval_text(figures.get("f1_low"), figures.get("f1_high"))]
    for name in ("precision", "recall"):
        interval = interval_text(figures.get(f"{name}_low"), figures.get(f"{name}_high"))
        if interval:  # none where nothing was called defective, or in a report written before intervals
            parts.append(f"{name} {figures[name]:.3f}, {interval}")
    parts = [part for part in parts if part]
    return f" ({'; '.join(parts)})" if parts else ""


def describe(report: dict) -> str:
    """The report as a few printed lines (without defective photos, the false alarms instead of an F1 of 0)."""
    def line(name: str, figures: dict) -> str:
        after = {"image_auroc": _interval_of(figures, "image_auroc"), "image_ap": _interval_of(figures, "image_ap"),
                 "f1": _f1_details_of(figures), "pixel_auroc": _split_of(figures)}
        shown = [f"{key.replace('_', ' ')} {figures[key]:.3f}{after.get(key, '')}"
                 for key in FIGURES if key in figures and not np.isnan(figures[key])
                 and (figures["defective"] or key != "f1")]
        if not figures["defective"]:
            shown.append(f"{figures['called_defective']} called defective (false alarms)")
        return f"  {name:<10} {figures['photos']:>5} photos ({figures['defective']} defective): " + ", ".join(shown)

    lines = [line("all", report)]
    lines += [line(kind, figures) for kind, figures in report.get("per_type", {}).items()]
    return "\n".join(lines)
