"""Figures people would rather see than read: the loss curve, precision-recall and ROC curves, the confusion matrix,
a localiser's outlines against the true defects and its photos' scores against its threshold."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from sklearn.metrics import auc, precision_recall_curve, roc_curve  # noqa: E402

from defect_tf.data.labels import known_mask  # noqa: E402
from defect_tf.evaluate.metrics import confusion_counts, operating_point, precision_recall_f1  # noqa: E402
from defect_tf.io.files import atomic_write  # noqa: E402


def _save(figure, path: str | Path) -> None:
    """Write through a temporary file, so a viewer never sees a half-drawn PNG."""
    try:
        atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(figure)


def plot_loss_curve(records: list[dict], path: str | Path) -> None:
    """Training and validation loss per epoch across all phases, with each phase's start marked."""
    figure, axis = plt.subplots(figsize=(7, 4))
    epochs = [record["epoch"] for record in records]
    axis.plot(epochs, [record.get("loss") for record in records], "o-", ms=3, label="training loss")
    if any(record.get("val_loss") is not None for record in records):
        axis.plot(epochs, [record.get("val_loss") for record in records], "s-", ms=3, label="validation loss")
    for previous, record in zip(records, records[1:]):
        if record["phase"] != previous["phase"]:
            boundary = (previous["epoch"] + record["epoch"]) / 2
            axis.axvline(boundary, color="grey", linestyle="--")
            axis.text(boundary, 0.98, f" {record['phase']}", transform=axis.get_xaxis_transform(),
                      va="top", color="grey")
    if records:
        axis.text(epochs[0], 0.98, f"{records[0]['phase']}", transform=axis.get_xaxis_transform(),
                  va="top", color="grey")
    axis.set_xlabel("epoch")
    axis.set_yscale("log")  # early spikes would otherwise flatten the rest of the curve
    axis.set_ylabel("masked loss (log scale)")
    axis.set_title("Loss across both training phases")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right", bbox_to_anchor=(1, 0.9))
    _save(figure, path)


def plot_precision_recall(labels: np.ndarray, scores: np.ndarray, attributes: list[str],
                          thresholds: np.ndarray, path: str | Path) -> None:
    """One precision-recall curve per attribute over its known labels, with the calibrated operating point."""
    figure, axis = plt.subplots(figsize=(6, 5))
    known = known_mask(labels)
    counts = confusion_counts(labels, scores >= thresholds)
    point_precision, point_recall, _ = precision_recall_f1(counts["tp"], counts["fp"], counts["fn"])
    for j, name in enumerate(attributes):
        y, s = labels[known[:, j], j], scores[known[:, j], j]
        if y.size == 0 or y.min() == y.max():
            continue
        precision, recall, _ = precision_recall_curve(y, s)
        line, = axis.plot(recall, precision, label=name)
        axis.plot(point_recall[j], point_precision[j], "o", color=line.get_color())
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.set_title("Precision-recall per attribute (dot: calibrated threshold)")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left")
    _save(figure, path)


def _draw_roc(axis, labels: np.ndarray, scores: np.ndarray, point: dict, point_label: str, curve_label: str | None,
              axis_labels: tuple[str, str]) -> float | None:
    """On `axis`: the ROC curve of 0/1 `labels` with the threshold's `point` (`operating_point`'s), the chance
    diagonal and the axes; the curve's AUC, or None (and no curve) with one kind of label only."""
    area = None
    if labels.size and labels.min() != labels.max():
        false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
        axis.plot(false_positive_rate, true_positive_rate, label=curve_label)
        axis.plot(point["false_positive_rate"], point["recall"], "o", label=point_label)
        area = float(auc(false_positive_rate, true_positive_rate))
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel(axis_labels[0])
    axis.set_ylabel(axis_labels[1])
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    return area


def plot_roc(labels: np.ndarray, scores: np.ndarray, point: dict, name: str, path: str | Path) -> None:
    """A binary detector's ROC curve over its known labels, with its operating point."""
    figure, axis = plt.subplots(figsize=(5, 5))
    known = known_mask(labels)
    _draw_roc(axis, labels[known], scores[known], point, f"threshold {point['threshold']:.3f}", name,
              ("false-positive rate", "true-positive rate (recall)"))
    axis.set_title(f"ROC: {name} (dot: the operating point)")
    _save(figure, path)


def plot_image_scores(defective: np.ndarray, scores: np.ndarray, threshold: float, path: str | Path) -> None:
    """How far apart a localiser's image scores put intact and defective photos: both histograms on shared bins
    with the threshold that decides between them, and the ROC curve with that threshold's point."""
    defective, scores = np.asarray(defective, bool), np.asarray(scores, float)
    figure, (spread, roc) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    bins = np.histogram_bin_edges(np.append(scores, threshold), bins=40)
    for chosen, name, colour in ((~defective, "intact", "tab:blue"), (defective, "defective", "tab:red")):
        above = int(np.sum(scores[chosen] >= threshold))
        spread.hist(scores[chosen], bins=bins, alpha=0.6, color=colour,
                    label=f"{name}: {above} of {int(chosen.sum())} at or above the threshold")
    spread.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    spread.set_xlabel("image score")
    spread.set_ylabel("photos")
    spread.set_title("Image scores: intact and defective photos")
    spread.legend(loc="upper right", fontsize=8)
    labels = defective.astype(np.float32)
    area = _draw_roc(roc, labels, scores, operating_point(labels, scores, threshold), f"threshold {threshold:.4g}",
                     None, ("false-positive rate (intact photos called defective)", "recall (defective photos found)"))
    roc.set_title(f"ROC: image AUROC {area:.3f} (dot: the threshold)")
    _save(figure, path)


def plot_confusion_matrix(matrix: np.ndarray, names: list[str], path: str | Path) -> None:
    """Counts of true class (rows) against predicted class (columns), each cell shaded by its row's share."""
    matrix = np.asarray(matrix)
    side = 1.5 + 0.6 * len(names)
    figure, axis = plt.subplots(figsize=(side + 1, side))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if shares[row, column] > 0.5 else "black")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title("Confusion matrix (shade: share of the true class)")
    figure.colorbar(image, ax=axis, fraction=0.046)
    _save(figure, path)


def plot_outlines(photos: list[np.ndarray], masks: list[np.ndarray], outlines: list[np.ndarray], titles: list[str],
                  path: str | Path, columns: int = 3) -> None:
    """Photos with the true defect (green) and the localiser's outline (red) drawn over them, one titled panel each."""
    rows = max(1, -(-len(photos) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False,
                                layout="constrained")
    for axis in axes.ravel():
        axis.axis("off")
    for axis, photo, mask, outline, title in zip(axes.ravel(), photos, masks, outlines, titles):
        axis.imshow(photo, cmap="gray" if photo.ndim == 2 else None)
        height, width = mask.shape
        for shape, colour in ((mask, "lime"), (outline, "red")):
            if np.any(shape):  # padded, so a region that meets the photo's edge is closed along it
                axis.contour(np.arange(-1, width + 1), np.arange(-1, height + 1), np.pad(np.asarray(shape, float), 1),
                             levels=[0.5], colors=colour, linewidths=1.2)
        axis.set_xlim(-0.5, width - 0.5)
        axis.set_ylim(height - 0.5, -0.5)
        axis.set_title(title, fontsize=9)
    figure.suptitle("The localiser's outline (red) against the true defect (green)")
    _save(figure, path)
