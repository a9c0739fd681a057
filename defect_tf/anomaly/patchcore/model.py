"""PatchCore (Roth et al., CVPR 2022): a photo is anomalous where its patches are far from every patch of the
intact photos. No training: one pass fills a memory bank with the pretrained backbone's mid-level patch features,
a greedy coreset keeps the rows that cover the rest, and a photo's map is each patch's distance to its nearest
row, smoothed.

The feature model (saved as `model.keras`, so it can be exported like the classifier) takes a photo at its
working size and returns the backbone's maps at the chosen levels; in NumPy, each is averaged over its 3x3
neighbourhood (the paper's local patch aggregation), brought to the finest level's grid and concatenated: one
feature vector per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import keras
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from defect_tf.anomaly.base import AnomalyModel, Report
from defect_tf.anomaly.coreset import greedy_coreset, nearest_distances
from defect_tf.anomaly.images import model_input, standardised
from defect_tf.anomaly.maps import resize_map, smooth
from defect_tf.errors import BundleError
from defect_tf.models.features import feature_extractor
from defect_tf.models.registry import get_backbone

BANK_FILE = "memory_bank.npy"
MODEL_FILE = "model.keras"
DEFAULTS = {
    "backbone": "efficientnet_lite0",
    # 1/8, 1/16 and 1/32 of the side: on the magnetic tiles P3 + P4 (the paper's layers 2 and 3 of a ResNet) reached
    # image / pixel AUROC 0.818 / 0.777 and adding P5 0.834 / 0.792, every defect type up (docs/findings.md)
    "levels": ["P3", "P4", "P5"],
    "neighbourhood": 3,
    "coreset_size": 10_000,  # rows kept in the memory bank
    "max_patches": 200_000,  # rows drawn from all photos before the coreset is chosen (bounds memory and time)
    "standardise": True,  # each photo's channels to one mean and spread first (a first exploration: docs/findings.md)
}


def build_feature_model(backbone: str, levels: list[str], weights: str | None) -> keras.Model:
    """Photo (any size, multiples of 32) -> the backbone's maps at `levels`."""
    entry = get_backbone(backbone)
    trunk = entry.constructor(include_top=False, weights=None, input_shape=(None, None, 3))
    if weights == "imagenet":
        if entry.imagenet is None:
            raise BundleError(f"{backbone} has no ImageNet weights available offline for PatchCore")
        entry.load_weights(trunk, entry.imagenet(backbone))
    return feature_extractor(trunk, backbone, levels)


def aggregate(maps: list[np.ndarray], neighbourhood: int) -> np.ndarray:
    """The paper's local patch features: each level's map (rows, cols, channels) averaged over its neighbourhood,
    brought to the finest level's grid (bilinear), concatenated along the channels."""
    finest = maps[0].shape[:2]
    out = []
    for level in maps:
        level = ndimage.uniform_filter(level, size=(neighbourhood, neighbourhood, 1), mode="nearest")
        if level.shape[:2] != finest:
            level = ndimage.zoom(level, (finest[0] / level.shape[0], finest[1] / level.shape[1], 1), order=1)
        out.append(level)
    return np.concatenate(out, axis=-1)


class PatchCore(AnomalyModel):
    name = "patchcore"
    files = (MODEL_FILE, BANK_FILE)

    def __init__(self, image_size: int, settings: dict, features: keras.Model | None = None,
                 bank: np.ndarray | None = None):
        super().__init__(image_size, {**DEFAULTS, **settings})
        s = self.settings
        self.features = features or build_feature_model(s["backbone"], list(s["levels"]), s.get("weights", "imagenet"))
        self.bank = bank

    def patch_features(self, inputs: np.ndarray) -> np.ndarray:
        """One model input -> (rows, cols, features)."""
        if self.settings["standardise"]:
            inputs = standardised(inputs)
        maps = self.features.predict_on_batch(inputs[None])
        maps = [np.asarray(m)[0] for m in (maps if isinstance(maps, (list, tuple)) else [maps])]
        return aggregate(maps, int(self.settings["neighbourhood"]))

    def fit(self, photos: Iterable[np.ndarray], count: int, report: Report = print,
            checkpoint_dir: Path | None = None) -> None:  # one pass: nothing to resume
        rng = np.random.default_rng(self.settings.get("seed", 0))
        per_photo = max(1, -(-int(self.settings["max_patches"]) // max(count, 1)))
        rows = []
        for photo in photos:
            cells = self.patch_features(model_input(photo, self.image_size))
            cells = cells.reshape(-1, cells.shape[-1])
            rows.append(cells[rng.choice(len(cells), per_photo, replace=False)] if len(cells) > per_photo else cells)
        bank = np.concatenate(rows)
        size = min(int(self.settings["coreset_size"]), len(bank))
        report(f"coreset: {size:,} of {len(bank):,} patch features ({bank.shape[1]} values each)")
        with tqdm(total=size, desc="coreset", unit="row", leave=False, unit_scale=True, disable=None) as bar:
            self.bank = bank[greedy_coreset(bank, size, seed=self.settings.get("seed", 0), report=bar.update)]

    def raw_map(self, inputs: np.ndarray) -> np.ndarray:
        cells = self.patch_features(inputs)
        distances = np.sqrt(nearest_distances(cells.reshape(-1, cells.shape[-1]), self.bank))
        return smooth(resize_map(distances.reshape(cells.shape[:2]), inputs.shape[:2]))

    def save(self, folder: Path) -> None:
        self.features.save(folder / MODEL_FILE)
        np.save(folder / BANK_FILE, self.bank.astype(np.float32), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, image_size: int, settings: dict) -> PatchCore:
        try:
            features = keras.saving.load_model(folder / MODEL_FILE, compile=False, safe_mode=True)
            bank = np.load(folder / BANK_FILE, allow_pickle=False)
        except Exception as error:
            raise BundleError(f"{folder}: cannot load the PatchCore model ({error})") from None
        shapes = features.output_shape if isinstance(features.output_shape, list) else [features.output_shape]
        if bank.ndim != 2 or bank.dtype != np.float32 or sum(shape[-1] for shape in shapes) != bank.shape[1]:
            raise BundleError(f"{folder}: {MODEL_FILE} and {BANK_FILE} do not belong together")
        return cls(image_size, settings, features, bank)
