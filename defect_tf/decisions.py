"""What a model's outputs mean, task by task, in NumPy alone (no TensorFlow, Keras or matplotlib): probabilities from
logits, and decisions from probabilities. The tasks (`tasks/`) and the bundle's metadata share these, so a decision
has one definition wherever the model runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

DEFAULT_TASK = "multilabel"


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def decide_each(probabilities: np.ndarray, thresholds: np.ndarray, untrained: np.ndarray) -> np.ndarray:
    """Every attribute at or over its threshold, except those the model was not trained on."""
    return (probabilities >= thresholds) & ~untrained


def decide_one(probabilities: np.ndarray, thresholds: np.ndarray, untrained: np.ndarray) -> np.ndarray:
    """One class per image: the most probable of those the model was trained on."""
    chosen = np.argmax(np.where(untrained, -np.inf, probabilities), axis=1)
    decided = np.zeros(probabilities.shape, dtype=bool)
    decided[np.arange(len(probabilities)), chosen] = True
    return decided


@dataclass(frozen=True)
class DecisionRule:
    """How one task turns logits into probabilities and probabilities into decisions."""

    uses_thresholds: bool  # a calibrated threshold per attribute (else: the most probable class)
    probabilities: Callable[[np.ndarray], np.ndarray]
    decide: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (probabilities, thresholds, untrained mask)


RULES = {"multilabel": DecisionRule(True, sigmoid, decide_each),
         "multiclass": DecisionRule(False, softmax, decide_one),
         "binary": DecisionRule(True, sigmoid, decide_each)}
