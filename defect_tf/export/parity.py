"""How closely an exported model matches the Keras one, on the same inputs: the largest difference in any
probability, the images whose decisions change, and the metric (macro F1 with the bundle's thresholds) of each."""

from __future__ import annotations

import numpy as np

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.decisions import RULES
from defect_tf.evaluate.metrics import classification_report

MAX_DIFFERENCE = 1e-5  # float32 exports: the largest probability difference accepted
MAX_INT8_DROP = 0.005  # int8 exports: the largest macro F1 drop accepted (half a point)


def measure(reference: np.ndarray, exported: np.ndarray, metadata: BundleMetadata,
            labels: np.ndarray | None = None) -> dict:
    """Parity of `exported` probabilities with `reference` (Keras's) on the same images; with the images' labels
    (as the task prepares them, NA as -1), the macro F1 of both."""
    rule = RULES[metadata.task]
    thresholds, untrained = metadata.decision_thresholds(), metadata.untrained_mask()
    keras_decisions = rule.decide(reference, thresholds, untrained)
    export_decisions = rule.decide(exported, thresholds, untrained)
    result = {"images": int(len(reference)),
              "max_abs_difference": float(np.max(np.abs(exported - reference))) if len(reference) else 0.0,
              "decisions_changed": int(np.any(keras_decisions != export_decisions, axis=1).sum())}
    if labels is not None and len(labels):
        result["macro_f1_keras"] = classification_report(labels, keras_decisions)["macro"]["f1"]
        result["macro_f1_export"] = classification_report(labels, export_decisions)["macro"]["f1"]
    return result


def problems(parity: dict, quantization: str) -> list[str]:
    """Where a parity misses its goal: float32 within MAX_DIFFERENCE of every probability (decisions changed are
    reported: with that, only an image on a threshold's edge can change); int8 within MAX_INT8_DROP of Keras's
    macro F1."""
    if quantization == "none":  # a decision can flip only where a probability lies within that of a threshold
        if parity["max_abs_difference"] > MAX_DIFFERENCE:
            return [f"probabilities differ by up to {parity['max_abs_difference']:.2g} (the goal: {MAX_DIFFERENCE:g})"]
        return []
    if "macro_f1_keras" not in parity:
        return []
    drop = parity["macro_f1_keras"] - parity["macro_f1_export"]
    if drop > MAX_INT8_DROP:
        return [f"macro F1 falls from {parity['macro_f1_keras']:.3f} to {parity['macro_f1_export']:.3f} "
                f"({100 * drop:.1f} points; the goal: at most {100 * MAX_INT8_DROP:.1f})"]
    return []


def describe(parity: dict, format_name: str) -> str:
    """One line: what was compared and how close it came."""
    line = (f"parity on {parity['images']} {parity.get('source', 'test')} images: max |p_{format_name} - p_keras| "
            f"{parity['max_abs_difference']:.2g}, {parity['decisions_changed']} decision(s) changed")
    if "macro_f1_keras" in parity:
        line += f", macro F1 {parity['macro_f1_keras']:.3f} (Keras) vs {parity['macro_f1_export']:.3f}"
    return line
