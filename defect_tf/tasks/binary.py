"""Binary: one sigmoid for one attribute ("defect or not"), a calibrated threshold, ROC and PR curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defect_tf.data.labels import LabelTable
from defect_tf.evaluate.metrics import operating_point
from defect_tf.evaluate.plots import plot_roc
from defect_tf.evaluate.report import binary_report, format_binary_report
from defect_tf.tasks.multilabel import MultiLabel

ROC_CURVE_FILE = "roc_curve.png"


class Binary(MultiLabel):
    name = "binary"
    report_files = (*MultiLabel.report_files, ROC_CURVE_FILE)

    def label_problems(self, table: LabelTable) -> list[str]:
        if len(table.attributes) != 1:
            return [f"--task binary needs exactly one attribute, the defect to detect (a label file with one column, or "
                    f"two class folders), but the labels have {len(table.attributes)}: {', '.join(table.attributes)}; "
                    "use --task multilabel or multiclass"]
        return []

    def report(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray,
               attributes: list[str]) -> dict:
        return binary_report(values, probabilities, thresholds, attributes)

    def format_report(self, report: dict) -> str:
        return format_binary_report(report)

    def headline(self, report: dict) -> str:
        point = report["operating_point"]
        return (f"F1 {report['calibrated']['macro']['f1']:.3f}, recall {point['recall']:.3f} at false-positive "
                f"rate {point['false_positive_rate']:.3f}")

    def plot(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray, attributes: list[str],
             output: Path) -> None:
        super().plot(values, probabilities, thresholds, attributes, output)
        point = operating_point(values[:, 0], probabilities[:, 0], float(thresholds[0]))
        plot_roc(values[:, 0], probabilities[:, 0], point, attributes[0], output / ROC_CURVE_FILE)
