"""What every anomaly model does (as anomalib's models share one base): learn what intact photos look like, then
give each photo an anomaly map at its own size and an image score. Models differ in how they learn: PatchCore
fills a memory bank in one pass, DRAEM learns by gradient descent. Thresholds, outlines and reports are
the same for all (anomaly/calibration.py, anomaly/regions.py, evaluate/localisation.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar, Iterable

import numpy as np

from defect_tf.anomaly.images import model_input
from defect_tf.anomaly.maps import resize_map

Report = Callable[[str], None]  # a line of progress
TOP_SHARE = 0.01  # a photo's score: the mean of its map's highest 1% (a first exploration: docs/findings.md)


class AnomalyModel(ABC):
    """An anomaly localiser: `fit` on intact photos, then `anomaly_map` and `image_score` per photo."""

    name: ClassVar[str]
    files: ClassVar[tuple[str, ...]]  # the files it saves into a bundle folder besides bundle.json
    earlier_seconds: float = 0.0  # fitting time spent before a resume, as its checkpoint recorded it

    def __init__(self, image_size: int, settings: dict):
        self.image_size = int(image_size)
        self.settings = dict(settings)

    @abstractmethod
    def fit(self, photos: Iterable[np.ndarray], count: int, report: Report = print,
            checkpoint_dir: Path | None = None) -> None:
        """Learn from `count` intact photos (upright RGB uint8 arrays, each its own size), streamed once. A model
        that learns over epochs saves its state in `checkpoint_dir` after each and resumes from what it finds there."""

    @abstractmethod
    def raw_map(self, inputs: np.ndarray) -> np.ndarray:
        """The anomaly map of one model input (float32, working size x 3), at the input's own size."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the model's files into a bundle folder being filled."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, image_size: int, settings: dict) -> AnomalyModel:
        """The model a bundle folder holds (its files already checked against their checksums)."""

    def anomaly_map(self, photo: np.ndarray) -> np.ndarray:
        """The photo's anomaly map (float32) at the photo's own height and width: higher is more anomalous."""
        return resize_map(self.raw_map(model_input(photo, self.image_size)), photo.shape[:2])

    def image_score(self, anomaly_map: np.ndarray) -> float:
        """The photo's anomaly score: the mean of its map's highest TOP_SHARE of pixels (the map is already
        smoothed); with top share 0, the map's maximum (PatchCore's rule)."""
        return top_mean(anomaly_map, float(self.settings.get("top_share", TOP_SHARE)))


def top_mean(anomaly_map: np.ndarray, share: float) -> float:
    """The mean of the highest `share` of the map's values (at least one value)."""
    values = np.asarray(anomaly_map, np.float32).ravel()
    count = max(1, int(round(share * values.size)))
    return float(np.mean(np.partition(values, values.size - count)[-count:]))
