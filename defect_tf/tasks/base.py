"""What a task decides: how logits become probabilities and decisions, which loss trains them, how the
decisions are tuned on the validation split, and which report scores them. One subclass per task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import keras
import numpy as np

from defect_tf.data.labels import LabelTable, summarize
from defect_tf.train.losses import LossSettings


class Task(ABC):
    """The contract every task keeps; the model always emits one float32 logit per attribute (class)."""

    name: str = ""
    uses_thresholds: bool = True  # decisions cut probabilities at per-attribute thresholds (else: argmax)
    report_files: tuple[str, ...] = ()  # the plots `plot` writes into an output folder

    def label_problems(self, table: LabelTable) -> list[str]:
        """What about these labels this task cannot train on (empty: nothing)."""
        return []

    def summarize(self, table: LabelTable) -> str:
        """The printable label counts a run starts with."""
        return summarize(table)

    def prepare(self, values: np.ndarray) -> np.ndarray:
        """The label matrix as this task trains and scores it (e.g. a known class makes the others known 0)."""
        return values

    @abstractmethod
    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per-attribute probabilities from the model's logits."""

    @abstractmethod
    def loss(self, train_values: np.ndarray, attributes: list[str],
             settings: LossSettings) -> tuple[keras.losses.Loss, str]:
        """The training loss, and a line for the log saying how classes are weighted."""

    @abstractmethod
    def thresholds(self, val_values: np.ndarray, val_probabilities: np.ndarray, fixed: float | None) -> list[float]:
        """Per-attribute thresholds for the bundle (`fixed`: the user's own cut instead of calibration)."""

    @abstractmethod
    def describe_thresholds(self, thresholds: list[float], attributes: list[str], fixed: float | None) -> str:
        """The log line saying how decisions are made."""

    @abstractmethod
    def decide(self, probabilities: np.ndarray, thresholds: np.ndarray, untrained: np.ndarray) -> np.ndarray:
        """Boolean decisions per image and attribute; an `untrained` attribute (mask) is never decided."""

    @abstractmethod
    def report(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray,
               attributes: list[str]) -> dict:
        """Every figure `evaluate.py` reports (JSON-ready)."""

    @abstractmethod
    def format_report(self, report: dict) -> str:
        """The printed report."""

    @abstractmethod
    def headline(self, report: dict) -> str:
        """The one figure a training run ends with, e.g. `macro F1 0.95`."""

    @abstractmethod
    def plot(self, values: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray, attributes: list[str],
             output: Path) -> None:
        """Write `report_files` into `output`."""
