"""The figures a task reports, from labels and probabilities (arrays in, a JSON-ready dict and its printed table out)."""

from __future__ import annotations

import math

import numpy as np

from defect_tf.evaluate.metrics import (
    INTERVAL_LEVEL,
    average_precision,
    average_precision_intervals,
    class_indices,
    classification_report,
    confusion_matrix,
    operating_point,
    proportion_interval,
    roc_auc,
    roc_auc_intervals,
    scored_attributes,
    top1_accuracy,
    top_k_accuracy,
)
from defect_tf.evaluate.thresholds import NAIVE_THRESHOLD

# Below these counts a figure is an anecdote, not an estimate: the report says so next to it.
MIN_SCORED_IMAGES = 30
MIN_POSITIVES = 5

COLUMN_INTERVAL_WIDTH = len(" (0.000-0.000)")  # a figure's interval in a table's column


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return round(float(value), 6) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def multilabel_report(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, attributes: list[str]) -> dict:
    """A multi-label model's figures over known labels only: calibrated vs 0.5 thresholds, AP, and ROC-AUC with
    its 95% interval (where the true figure lies, given how many images back it)."""
    lows, highs = roc_auc_intervals(labels, scores)
    ap_lows, ap_highs = average_precision_intervals(labels, scores)
    return _jsonable({
        "attributes": attributes,
        "images": len(labels),
        "unscored": [name for name, scored in zip(attributes, scored_attributes(labels)) if not scored],
        "thresholds": thresholds,
        "calibrated": classification_report(labels, scores >= thresholds),
        "at_0.5": classification_report(labels, scores >= NAIVE_THRESHOLD),
        "average_precision": average_precision(labels, scores),
        "average_precision_low": ap_lows,
        "average_precision_high": ap_highs,
        "roc_auc": roc_auc(labels, scores),
        "roc_auc_low": lows,
        "roc_auc_high": highs,
        "single_label_images": int(((labels == 1).sum(axis=1) == 1).sum()),
        "top1_accuracy": top1_accuracy(labels, scores),
    })


def format_multilabel_report(report: dict) -> str:
    """The printed table: one row per attribute, then the averages and exact-match accuracy."""
    names = report["attributes"]
    width = max(len("weighted avg"), *(len(name) for name in names))
    cal, half = report["calibrated"], report["at_0.5"]
    header = (f"{'attribute':<{width}}  thresh |  prec   rec    F1 ({INTERVAL_LEVEL:.0%} interval) | prec@.5 rec@.5 F1@.5 |"
              f" support   NA |   AP ({INTERVAL_LEVEL:.0%} interval)   AUC ({INTERVAL_LEVEL:.0%} interval)")
    lines = [header, "-" * len(header)]
    for j, name in enumerate(names):
        c, h = cal["per_attribute"], half["per_attribute"]
        lines.append(
            f"{name:<{width}}  {_number(report['thresholds'][j])}  | {_number(c['precision'][j])} {_number(c['recall'][j])}"
            f" {_number(c['f1'][j])}{_column_interval(c, 'f1', j)} |  {_number(h['precision'][j])}  {_number(h['recall'][j])}"
            f" {_number(h['f1'][j])} |"
            f" {c['support'][j]:>7} {c['na'][j]:>4} | {_number(report['average_precision'][j])}"
            f"{_column_interval(report, 'average_precision', j)}  {_number(report['roc_auc'][j])}"
            f"{_column_interval(report, 'roc_auc', j, pad=False)}")
    lines.append("-" * len(header))
    for average in ("macro", "micro", "weighted"):
        c, h = cal[average], half[average]
        lines.append(f"{average + ' avg':<{width}}         | {_number(c['precision'])} {_number(c['recall'])}"
                     f" {_number(c['f1'])}{' ' * COLUMN_INTERVAL_WIDTH} |  {_number(h['precision'])}  {_number(h['recall'])}"
                     f" {_number(h['f1'])} |")
    lines.append(f"exact match over {report['images']} images (known labels only): "
                 f"{_number(cal['exact_match'])} calibrated, {_number(half['exact_match'])} at 0.5")
    if report.get("single_label_images") and len(report["attributes"]) > 1:  # one attribute: always "right"
        lines.append(f"top-1 accuracy over the {report['single_label_images']} images with exactly one positive "
                     f"label (highest score = that attribute): {_number(report['top1_accuracy'])}")
    if report.get("seen_in_training"):
        lines.append(f"warning: {report['seen_in_training']} of these {report['images']} images were used to train or "
                     "calibrate this model (its train and val splits): these figures are optimistic, not a test")
    lines += reliability_warnings(report)
    return "\n".join(lines)


def _number(value) -> str:
    return "    -" if value is None else f"{value:5.3f}"


def interval_text(low: float | None, high: float | None) -> str:
    """"95% interval low-high" of a figure, or nothing where it has none (None or NaN: one kind only)."""
    if low is None or high is None or np.isnan([low, high]).any():
        return ""
    return f"{INTERVAL_LEVEL:.0%} interval {low:.3f}-{high:.3f}"


def _column_interval(figures: dict, name: str, attribute: int, pad: bool = True) -> str:
    """" (low-high)": the interval of an attribute's figure `name` in a table's column; where it has none (one
    class, or a report written before that figure had one), blanks of the same width, or nothing without `pad`
    (the last column)."""
    low, high = (figures.get(f"{name}_{end}", [None] * (attribute + 1))[attribute] for end in ("low", "high"))
    if low is None or high is None:
        return " " * COLUMN_INTERVAL_WIDTH if pad else ""
    return f" ({low:.3f}-{high:.3f})"


def binary_report(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, attributes: list[str]) -> dict:
    """A binary model's figures: the multi-label ones for its one attribute, and its operating point."""
    report = multilabel_report(labels, scores, thresholds, attributes)
    report["operating_point"] = _jsonable(operating_point(labels[:, 0], scores[:, 0], float(thresholds[0])))
    return report


def format_binary_report(report: dict) -> str:
    point = report["operating_point"]
    return (format_multilabel_report(report) + f"\noperating point at threshold {_number(point['threshold'])} "
            f"({INTERVAL_LEVEL:.0%} intervals in brackets): recall (true-positive rate) {_rate(point, 'recall')}, "
            f"false-positive rate {_rate(point, 'false_positive_rate')}, precision {_rate(point, 'precision')}"
            + (f", F1 {_rate(point, 'f1')}" if "f1" in point else ""))


def _rate(point: dict, name: str) -> str:
    """"0.750 (0.301-0.954)": a rate and its interval (the rate alone where it has none, as in a report written
    before rates had one)."""
    low, high = point.get(f"{name}_low"), point.get(f"{name}_high")
    return _number(point[name]).strip() + ("" if low is None or high is None else f" ({low:.3f}-{high:.3f})")


def multiclass_report(labels: np.ndarray, scores: np.ndarray, attributes: list[str]) -> dict:
    """A multi-class model's figures over images with a known class: accuracy (with its 95% interval), top-k,
    per-class precision / recall / F1 (one-vs-rest, from the argmax decision), their averages, and the confusion
    matrix."""
    truth = class_indices(labels)
    predicted = np.argmax(scores, axis=1)
    known = truth >= 0
    decided = np.zeros_like(scores, dtype=bool)
    decided[np.arange(len(scores)), predicted] = True
    per_class = classification_report(labels, decided)
    k = min(3, len(attributes) - 1)
    right = predicted[known] == truth[known]
    low, high = proportion_interval(int(right.sum()), len(right))
    ap_lows, ap_highs = average_precision_intervals(labels, scores)
    return _jsonable({
        "attributes": attributes,
        "images": len(labels),
        "unknown_class": int((~known).sum()),
        "accuracy": float(right.mean()) if known.any() else float("nan"),
        "accuracy_low": low,
        "accuracy_high": high,
        "top_k": k,
        "top_k_accuracy": top_k_accuracy(truth, scores, k),
        "per_class": per_class["per_attribute"],
        "macro": per_class["macro"],
        "weighted": per_class["weighted"],
        "confusion_matrix": confusion_matrix(truth, predicted, len(attributes)),
        "average_precision": average_precision(labels, scores),
        "average_precision_low": ap_lows,
        "average_precision_high": ap_highs,
        "unscored": [name for name, scored in zip(attributes, scored_attributes(labels)) if not scored],
    })


def format_multiclass_report(report: dict) -> str:
    """The printed report: per-class table, averages, accuracy, and the confusion matrix (rows: true class)."""
    names = report["attributes"]
    width = max(len("weighted avg"), *(len(name) for name in names))
    c = report["per_class"]
    header = (f"{'class':<{width}}  prec   rec    F1 ({INTERVAL_LEVEL:.0%} interval) | support |   AP"
              f" ({INTERVAL_LEVEL:.0%} interval)")
    lines = [header, "-" * len(header)]
    for j, name in enumerate(names):
        lines.append(f"{name:<{width}} {_number(c['precision'][j])} {_number(c['recall'][j])} {_number(c['f1'][j])}"
                     f"{_column_interval(c, 'f1', j)} | {c['support'][j]:>7} | {_number(report['average_precision'][j])}"
                     f"{_column_interval(report, 'average_precision', j)}")
    lines.append("-" * len(header))
    for average in ("macro", "weighted"):
        a = report[average]
        lines.append(f"{average + ' avg':<{width}} {_number(a['precision'])} {_number(a['recall'])} "
                     f"{_number(a['f1'])}{' ' * COLUMN_INTERVAL_WIDTH} |")
    scored = report["images"] - report["unknown_class"]
    interval = interval_text(report["accuracy_low"], report["accuracy_high"])
    lines.append(f"accuracy over {scored} images with a known class: {_number(report['accuracy'])}"
                 f" ({interval + '; ' if interval else ''}top-{report['top_k']}: {_number(report['top_k_accuracy'])})")
    if report["unknown_class"]:
        lines.append(f"note: {report['unknown_class']} image(s) have no known class (NA): not scored")
    cell = max(5, *(len(name) for name in names))
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    lines.append(" " * (width + 1) + " ".join(f"{name[:cell]:>{cell}}" for name in names))
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"{name:<{width}} " + " ".join(f"{count:>{cell}}" for count in row))
    lines += reliability_warnings({**report, "calibrated": {"per_attribute": c}})
    return "\n".join(lines)


def reliability_warnings(report: dict) -> list[str]:
    """What the figures rest on, where it is too little to trust them (see MIN_SCORED_IMAGES, MIN_POSITIVES)."""
    warnings = []
    if report.get("unscored"):
        warnings.append(f"note: {', '.join(report['unscored'])} has no known label among these images: not scored, "
                        "and left out of the averages")
    if report["images"] < MIN_SCORED_IMAGES:
        warnings.append(f"warning: these figures rest on {report['images']} image(s), fewer than "
                        f"{MIN_SCORED_IMAGES}: one image more or less right moves them a lot; label more images")
    support = report["calibrated"]["per_attribute"]["support"]
    few = [f"{name} ({count})" for name, count in zip(report["attributes"], support)
           if 0 < count < MIN_POSITIVES]
    if few:
        warnings.append(f"warning: fewer than {MIN_POSITIVES} positive images back the recall and F1 of: "
                        f"{', '.join(few)}")
    return warnings
