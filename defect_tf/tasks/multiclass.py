"""Multi-class: exactly one class per image, softmax over the classes, the highest probability decides."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from defect_tf.data.labels import LabelTable
from defect_tf.decisions import RULES
from defect_tf.evaluate.metrics import class_indices, confusion_matrix
from defect_tf.evaluate.plots import plot_confusion_matrix
from defect_tf.evaluate.report import format_multiclass_report, multiclass_report
from defect_tf.tasks.base import Task
from defect_tf.train.losses import MAX_CLASS_WEIGHT, LossSettings, MaskedCategoricalFocalLoss, class_weights_of

CONFUSION_MATRIX_FILE = "confusion_matrix.png"
MAX_LISTED = 5


class MultiClass(Task):
    name = "multiclass"
    uses_thresholds = RULES["multiclass"].uses_thresholds
    report_files = (CONFUSION_MATRIX_FILE,)

    def label_problems(self, table: LabelTable) -> list[str]:
        if len(table.attributes) < 2:
            return [f"--task multiclass needs at least two classes, but the labels have {len(table.attributes)}; "
                    "use --task binary"]
        positives = (table.values == 1).sum(axis=1)
        several = [image for image, count in zip(table.images, positives) if count > 1]
        none = [image for image, count, row in zip(table.images, positives, table.values)
                if count == 0 and (row == 0).all()]
        problems = []
        if several:
            problems.append(f"--task multiclass: {len(several)} image(s) have more than one class, e.g. "
                            f"{', '.join(several[:MAX_LISTED])}; give each one class, or use --task multilabel")
        if none:
            problems.append(f"--task multiclass: {len(none)} image(s) are 0 for every class, e.g. "
                            f"{', '.join(none[:MAX_LISTED])}; give each its class (or NA if unknown), or add a "
                            "class for them (e.g. `good`)")
        return problems

    def summarize(self, table: LabelTable) -> str:
        counts = (table.values == 1).sum(axis=0)
        width = max([len("class"), *(len(name) for name in table.attributes)])
        unknown = int((class_indices(table.values) < 0).sum())
        lines = [f"{len(table.images)} images, {len(table.attributes)} classes"
                 + (f" ({unknown} without a known class: not trained on or scored)" if unknown else ""),
                 f"  {'class':<{width}} {'images':>7}"]
        return "\n".join(lines + [f"  {name:<{width}} {count:>7}" for name, count in zip(table.attributes, counts)])

    def prepare(self, values: np.ndarray) -> np.ndarray:
        """A known class makes the row's other entries known 0; a row without a known class is all NA."""
        known = class_indices(values) >= 0
        return np.where(known[:, None], (values == 1).astype(np.float32), np.float32(-1.0))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return RULES[self.name].probabilities(logits)

    def loss(self, train_values: np.ndarray, attributes: list[str],
             settings: LossSettings) -> tuple[keras.losses.Loss, str]:
        if not settings.class_weights:
            return MaskedCategoricalFocalLoss(settings.gamma, settings.label_smoothing), "class weights: off"
        weights = class_weights_of(train_values)
        return MaskedCategoricalFocalLoss(settings.gamma, settings.label_smoothing, weights), (
            f"class weights from the training split (rare class up, clipped to [{1 / MAX_CLASS_WEIGHT:g}, "
            f"{MAX_CLASS_WEIGHT:g}]): " + ", ".join(f"{name} {w:.3f}" for name, w in zip(attributes, weights)))

    def thresholds(self, val_values: np.ndarray, val_probabilities: np.ndarray, fixed: float | None) -> list[float]:
        return []

    def describe_thresholds(self, thresholds: list[float], attributes: list[str], fixed: float | None) -> str:
        return "decision: the class with the highest probability (no thresholds)"

    def decide(self, probabilities: np.ndarray, thresholds: np.ndarray, untrained: np.ndarray) -> np.ndarray:
        return RULES[self.name].decide(probabilities, thresholds, untrained)

    def report(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray,
               attributes: list[str]) -> dict:
        return multiclass_report(values, probabilities, attributes)

    def format_report(self, report: dict) -> str:
        return format_multiclass_report(report)

    def headline(self, report: dict) -> str:
        return f"accuracy {report['accuracy']:.3f}, macro F1 {report['macro']['f1']:.3f}"

    def plot(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray, attributes: list[str],
             output: Path) -> None:
        matrix = confusion_matrix(class_indices(values), np.argmax(probabilities, axis=1), len(attributes))
        plot_confusion_matrix(matrix, attributes, output / CONFUSION_MATRIX_FILE)
