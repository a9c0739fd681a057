"""Multi-label: one sigmoid per attribute, any number of them present; NA labels masked everywhere."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from defect_tf.decisions import RULES
from defect_tf.evaluate.plots import plot_precision_recall
from defect_tf.evaluate.report import format_multilabel_report, multilabel_report
from defect_tf.evaluate.thresholds import NAIVE_THRESHOLD, calibrate_thresholds
from defect_tf.tasks.base import Task
from defect_tf.train.losses import MAX_CLASS_WEIGHT, LossSettings, MaskedFocalLoss, attribute_class_weights

PR_CURVE_FILE = "pr_curve.png"


def _weight_table(attributes: list[str], positive: np.ndarray, negative: np.ndarray) -> str:
    width = max(len("attribute"), *(len(name) for name in attributes))
    rows = [f"  {'attribute':<{width}} {'positive':>9} {'negative':>9}"]
    rows += [f"  {name:<{width}} {p:>9.3f} {n:>9.3f}" for name, p, n in zip(attributes, positive, negative)]
    return "\n".join(rows)


class MultiLabel(Task):
    name = "multilabel"
    report_files = (PR_CURVE_FILE,)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return RULES[self.name].probabilities(logits)

    def loss(self, train_values: np.ndarray, attributes: list[str],
             settings: LossSettings) -> tuple[keras.losses.Loss, str]:
        if not settings.class_weights:
            return MaskedFocalLoss(settings.gamma, alpha=settings.alpha), "class weights: off"
        positive, negative = attribute_class_weights(train_values)
        return MaskedFocalLoss(settings.gamma, positive, negative, settings.alpha), (
            f"class weights from the training split's known labels (rare class up, clipped to "
            f"[{1 / MAX_CLASS_WEIGHT:g}, {MAX_CLASS_WEIGHT:g}]):\n" + _weight_table(attributes, positive, negative))

    def thresholds(self, val_values: np.ndarray, val_probabilities: np.ndarray, fixed: float | None) -> list[float]:
        if fixed is not None:
            return [float(fixed)] * val_values.shape[1]
        return [float(t) for t in calibrate_thresholds(val_values, val_probabilities)]

    def describe_thresholds(self, thresholds: list[float], attributes: list[str], fixed: float | None) -> str:
        cuts = ", ".join(f"{name} {t:.3f}" for name, t in zip(attributes, thresholds))
        if fixed is not None:
            return f"thresholds: --threshold {fixed:g} for every attribute (not calibrated)"
        return ("thresholds calibrated for best F1 on the validation split (fallback "
                f"{NAIVE_THRESHOLD} where it has no positive or no negative): {cuts}")

    def decide(self, probabilities: np.ndarray, thresholds: np.ndarray, untrained: np.ndarray) -> np.ndarray:
        return RULES[self.name].decide(probabilities, thresholds, untrained)

    def report(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray,
               attributes: list[str]) -> dict:
        return multilabel_report(values, probabilities, thresholds, attributes)

    def format_report(self, report: dict) -> str:
        return format_multilabel_report(report)

    def headline(self, report: dict) -> str:
        return f"macro F1 {report['calibrated']['macro']['f1']:.3f} (calibrated thresholds)"

    def plot(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray, attributes: list[str],
             output: Path) -> None:
        plot_precision_recall(values, probabilities, attributes, thresholds, output / PR_CURVE_FILE)
