"""Scoring a model on labelled images: the per-attribute table, metrics.json and the PR-curve plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from defect_tf.bundle.store import Bundle
from defect_tf.data.checks import DataReport, unreadable_images
from defect_tf.data.labels import LabelTable
from defect_tf.data.pipeline import make_dataset
from defect_tf.errors import ImageError, LabelError
from defect_tf.evaluate.metrics import (
    average_precision,
    classification_report,
    roc_auc,
    scored_attributes,
    top1_accuracy,
)
from defect_tf.evaluate.plots import plot_precision_recall
from defect_tf.evaluate.thresholds import NAIVE_THRESHOLD
from defect_tf.inference.predictor import PREDICT_BATCH, predict_probabilities
from defect_tf.io import output_folder
from defect_tf.io.files import write_text

METRICS_FILE = "metrics.json"
PR_CURVE_FILE = "pr_curve.png"
# Below these counts a figure is an anecdote, not an estimate: the report says so next to it.
MIN_SCORED_IMAGES = 30
MIN_POSITIVES = 5


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


def evaluate_scores(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, attributes: list[str]) -> dict:
    """Everything evaluate.py reports, for known labels only: calibrated vs 0.5 thresholds, AP and ROC-AUC."""
    return _jsonable({
        "attributes": attributes,
        "images": len(labels),
        "unscored": [name for name, scored in zip(attributes, scored_attributes(labels)) if not scored],
        "thresholds": thresholds,
        "calibrated": classification_report(labels, scores >= thresholds),
        "at_0.5": classification_report(labels, scores >= NAIVE_THRESHOLD),
        "average_precision": average_precision(labels, scores),
        "roc_auc": roc_auc(labels, scores),
        "single_label_images": int(((labels == 1).sum(axis=1) == 1).sum()),
        "top1_accuracy": top1_accuracy(labels, scores),
    })


def format_report(report: dict) -> str:
    """The printed table: one row per attribute, then the averages and exact-match accuracy."""
    def number(value) -> str:
        return "    -" if value is None else f"{value:5.3f}"

    names = report["attributes"]
    width = max(len("weighted avg"), *(len(name) for name in names))
    cal, half = report["calibrated"], report["at_0.5"]
    header = (f"{'attribute':<{width}}  thresh |  prec   rec    F1  | prec@.5 rec@.5 F1@.5 | support   NA |   AP    AUC")
    lines = [header, "-" * len(header)]
    for j, name in enumerate(names):
        c, h = cal["per_attribute"], half["per_attribute"]
        lines.append(
            f"{name:<{width}}  {number(report['thresholds'][j])}  | {number(c['precision'][j])} {number(c['recall'][j])}"
            f" {number(c['f1'][j])} |  {number(h['precision'][j])}  {number(h['recall'][j])} {number(h['f1'][j])} |"
            f" {c['support'][j]:>7} {c['na'][j]:>4} | {number(report['average_precision'][j])}"
            f"  {number(report['roc_auc'][j])}")
    lines.append("-" * len(header))
    for average in ("macro", "micro", "weighted"):
        c, h = cal[average], half[average]
        lines.append(f"{average + ' avg':<{width}}          | {number(c['precision'])} {number(c['recall'])}"
                     f" {number(c['f1'])} |  {number(h['precision'])}  {number(h['recall'])} {number(h['f1'])} |")
    lines.append(f"exact match over {report['images']} images (known labels only): "
                 f"{number(cal['exact_match'])} calibrated, {number(half['exact_match'])} at 0.5")
    if report.get("single_label_images") and len(report["attributes"]) > 1:  # one attribute: always "right"
        lines.append(f"top-1 accuracy over the {report['single_label_images']} images with exactly one positive "
                     f"label (highest score = that attribute): {number(report['top1_accuracy'])}")
    if report.get("seen_in_training"):
        lines.append(f"warning: {report['seen_in_training']} of these {report['images']} images were used to train or "
                     "calibrate this model (its train and val splits): these figures are optimistic, not a test")
    lines += reliability_warnings(report)
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


def align_attributes(table: LabelTable, attributes: list[str]) -> LabelTable:
    """Reorder a label table's columns to the model's attribute order; different attributes are an error."""
    if table.attributes == attributes:
        return table
    if sorted(table.attributes) != sorted(attributes):
        missing = [name for name in attributes if name not in table.attributes]
        extra = [name for name in table.attributes if name not in attributes]
        raise LabelError(f"the labels' attributes do not match the model's: the model has {attributes}; "
                         f"missing from the labels: {missing or 'none'}; not known to the model: {extra or 'none'}")
    order = [table.attributes.index(name) for name in attributes]
    return LabelTable(list(attributes), table.images, table.values[:, order])


def split_table(bundle: Bundle, table: LabelTable, split: str) -> LabelTable:
    """The rows of `table` in one of the bundle's saved splits (`all`: every row), e.g. to score the
    test split against another label file than the one the model was trained with."""
    if split == "all":
        return table
    wanted = bundle.metadata.split[split]
    rows = table.only(wanted)
    if not rows.images:
        raise LabelError(f"none of the model's {len(wanted)} {split} images are in this label file")
    return rows


def seen_in_training(bundle: Bundle, data_dir: str | Path, images: list[str]) -> list[str]:
    """Those of `images` (under `data_dir`) that the bundle was trained or calibrated on (its train and val splits)."""
    trained_dir = Path(bundle.metadata.data_dir)
    seen = {(trained_dir / image).resolve() for name in ("train", "val")
            for image in bundle.metadata.split.get(name, [])}
    return [image for image in images if (Path(data_dir) / image).resolve() in seen]


def evaluate_bundle(bundle: Bundle, data_dir: str | Path, table: LabelTable, output_dir: str | Path,
                    batch_size: int = PREDICT_BATCH) -> dict:
    """Predict `table`'s images with the bundle, score them, write metrics.json and pr_curve.png."""
    with output_folder.locked(output_dir):
        output_dir = output_folder.claim(output_dir, (METRICS_FILE, PR_CURVE_FILE))
        table = align_attributes(table, bundle.attributes)
        paths = [str(Path(data_dir) / image) for image in table.images]
        bad = unreadable_images(paths)
        if bad:
            raise ImageError(DataReport(bad_images=bad).describe_bad_images())
        dataset = make_dataset(paths, table.values, bundle.image_size, batch_size)
        scores = predict_probabilities(bundle.model, dataset)
        report = evaluate_scores(table.values, scores, bundle.thresholds, bundle.attributes)
        report["seen_in_training"] = len(seen_in_training(bundle, data_dir, table.images))
        write_text(output_dir / METRICS_FILE, json.dumps(report, indent=1))
        plot_precision_recall(table.values, scores, bundle.attributes, bundle.thresholds, output_dir / PR_CURVE_FILE)
        return report
