"""What a model says about one photo: every attribute's probability, and those it decides are there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.decisions import RULES


@dataclass
class Prediction:
    image: str
    probabilities: dict[str, float]
    detected: list[str]

    def as_dict(self) -> dict:
        return {"image": self.image, "probabilities": self.probabilities, "detected": self.detected}


def label(names: list[str], probabilities: np.ndarray, metadata: BundleMetadata) -> list[Prediction]:
    """Predictions for a batch: the task's decision rule with the bundle's thresholds (untrained attributes never)."""
    decided = RULES[metadata.task].decide(probabilities, metadata.decision_thresholds(), metadata.untrained_mask())
    return [Prediction(name, {attribute: float(p) for attribute, p in zip(metadata.attributes, row)},
                       [attribute for attribute, chosen in zip(metadata.attributes, picked) if chosen])
            for name, row, picked in zip(names, probabilities, decided)]
