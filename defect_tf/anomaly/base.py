"""What every anomaly model does (as anomalib's models share one base): learn what intact photos look like, then
give each photo an anomaly map at its own size and an image score. Models differ in how they learn: PatchCore
fills a memory bank in one pass, DRAEM learns by gradient descent. Thresholds, outlines and reports are
the same for all (anomaly/calibration.py, anomaly/regions.py, evaluate/localisation.py).

Answering is split as anomalib's inferencers are: pre-process and post-process in NumPy (`AnomalyMaps`, imported
without TensorFlow) around the network's forward pass, which is Keras for a trained model (`AnomalyModel`) and
ONNX Runtime for an exported one (anomaly/runtimes.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar, Iterable

import numpy as np

from defect_tf.anomaly.images import model_input
from defect_tf.anomaly.maps import resize_map
from defect_tf.errors import BundleError

Report = Callable[[str], None]  # a line of progress
Forward = Callable[[np.ndarray], list[np.ndarray]]  # a batch of network inputs -> the network's outputs, in order
# A photo's score: the mean of its map's highest 1%. On the magnetic tiles the whole map ranks photos higher (image
# AUROC 0.980 against 0.834), but it ranks halves of them that hold no defect at 0.880 (the top 1% of raw maps:
# 0.559, of maps measured by place: 0.751): it measures how the set's defective photos differ all over, not the
# defects (docs/findings.md). Shares from the maximum to 10% were measured on validation photos: larger ones rank
# photos a little higher and the defect-free halves higher too, smaller ones rank both lower (docs/findings.md).
TOP_SHARE = 0.01


class AnomalyMaps(ABC):
    """A model's answer per photo: `network_input` (NumPy), the network's forward pass, `map_from` its outputs
    (NumPy), then the map at the photo's size and its image score."""

    name: ClassVar[str]
    exported_files: ClassVar[tuple[str, ...]] = ()  # the model's files besides its network that an export needs

    def __init__(self, image_size: int, settings: dict, forward: Forward | None = None):
        self.image_size = int(image_size)
        self.settings = dict(settings)
        self.forward_pass = forward

    @abstractmethod
    def network_input(self, inputs: np.ndarray) -> np.ndarray:
        """One model input (float32, working size x 3, 0-255) as the network's batch of one."""

    @abstractmethod
    def map_from(self, outputs: list[np.ndarray], inputs: np.ndarray) -> np.ndarray:
        """The anomaly map at the input's own size, from the network's outputs for it (a batch of one)."""

    def maps_from(self, outputs: list[np.ndarray], inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(the anomaly map, the map the photo's score is taken from, or None when it is the same one), both at
        the input's own size. A model whose outline map sees more than its score should (PatchCore with a defect
        head) scores the photo on another map."""
        return self.map_from(outputs, inputs), None

    @classmethod
    def bundle_files(cls, settings: dict) -> tuple[str, ...]:
        """The model's files beside its network that a bundle with these settings holds (its exported network
        needs them too)."""
        return cls.exported_files

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        """The network's outputs (NumPy arrays, in a fixed order) for a batch of its inputs."""
        return [np.asarray(output) for output in self.forward_pass(batch)]

    def raw_maps(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`maps_from` for one model input (float32, working size x 3)."""
        return self.maps_from(self.forward(self.network_input(inputs)), inputs)

    def raw_map(self, inputs: np.ndarray) -> np.ndarray:
        """The anomaly map of one model input (float32, working size x 3), at the input's own size."""
        return self.raw_maps(inputs)[0]

    def raw_score(self, raw_maps: tuple[np.ndarray, np.ndarray | None]) -> float:
        """The image score of one model input from its `raw_maps`."""
        anomaly_map, score_map = raw_maps
        return self.image_score(anomaly_map if score_map is None else score_map)

    def anomaly_map(self, photo: np.ndarray) -> np.ndarray:
        """The photo's anomaly map (float32) at the photo's own height and width: higher is more anomalous."""
        return resize_map(self.raw_map(model_input(photo, self.image_size)), photo.shape[:2])

    def answer(self, photo: np.ndarray) -> tuple[np.ndarray, float]:
        """The photo's anomaly map at its own height and width, and its image score (from that map, or from the
        model's score map at the photo's size)."""
        return self.answer_from(self.raw_maps(model_input(photo, self.image_size)), photo.shape[:2])

    def answer_from(self, raw_maps: tuple[np.ndarray, np.ndarray | None],
                    shape: tuple[int, int]) -> tuple[np.ndarray, float]:
        """`answer` from a model input's `raw_maps`, for a photo of `shape` (height, width)."""
        anomaly_map, score_map = raw_maps
        anomaly_map = resize_map(anomaly_map, shape)
        return anomaly_map, self.image_score(anomaly_map if score_map is None else resize_map(score_map, shape))

    def image_score(self, anomaly_map: np.ndarray) -> float:
        """The photo's anomaly score: the mean of its map's highest TOP_SHARE of pixels (the map is already
        smoothed); with top share 0, the map's maximum (PatchCore's rule)."""
        return top_mean(anomaly_map, float(self.settings.get("top_share", TOP_SHARE)))

    @classmethod
    def exported(cls, folder: Path, image_size: int, settings: dict, forward: Forward) -> AnomalyMaps:
        """The maps of a bundle folder's model with an exported network's `forward` (the model's own files beside
        the network, such as PatchCore's memory bank, read without TensorFlow)."""
        return cls(image_size, settings, forward)


class AnomalyModel(AnomalyMaps):
    """An anomaly localiser that learns: `fit` on intact photos, `save` into a bundle folder, `load` from one; its
    network is a Keras model, which `export_network` gives for export."""

    files: ClassVar[tuple[str, ...]]  # its network's files in a bundle folder (the rest: `bundle_files`)
    earlier_seconds: float = 0.0  # fitting time spent before a resume, as its checkpoint recorded it
    learns_from_masks: ClassVar[bool] = False  # whether `learn_defects` learns anything

    @abstractmethod
    def fit(self, photos: Iterable[np.ndarray], count: int, report: Report = print,
            checkpoint_dir: Path | None = None) -> None:
        """Learn from `count` intact photos (upright RGB uint8 arrays, each its own size), streamed once. A model
        that learns over epochs saves its state in `checkpoint_dir` after each and resumes from what it finds there."""

    def learn_defects(self, intact: list[np.ndarray], defects: list[np.ndarray], masks: list[np.ndarray | None],
                      report: Report = print, whole: bool = False) -> tuple[list, list] | None:
        """After `fit`, learn from labelled defects' masks where the model can (PatchCore's defect head; `whole`:
        what it learnt may also lower the map where it sees nothing it knows). Returns each validation photo's
        `answer` (intact, then defective) from a model that did not learn from that photo, for the thresholds;
        None when nothing was learnt."""
        return None

    def saved_files(self) -> tuple[str, ...]:
        """Every file `save` writes into a bundle folder besides bundle.json."""
        return (*self.files, *self.bundle_files(self.settings))

    @abstractmethod
    def export_network(self):
        """The Keras model of the forward pass: the network's input batch -> its outputs, in `forward`'s order."""

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the model's files into a bundle folder being filled."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, image_size: int, settings: dict) -> AnomalyModel:
        """The model a bundle folder holds (its files already checked against their checksums)."""


def load_network(path: Path, what: str):
    """A Keras model file of a localiser bundle, loaded in safe mode (no code in it runs), or a one-line BundleError
    naming the model."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise BundleError(f"{path.parent}: cannot load the {what} model ({error})") from None


def top_mean(anomaly_map: np.ndarray, share: float) -> float:
    """The mean of the highest `share` of the map's values (at least one value)."""
    values = np.asarray(anomaly_map, np.float32).ravel()
    count = max(1, int(round(share * values.size)))
    return float(np.mean(np.partition(values, values.size - count)[-count:]))
