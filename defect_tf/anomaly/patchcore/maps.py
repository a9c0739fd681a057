"""PatchCore's answer around its feature model, in NumPy (no TensorFlow, so an exported feature model answers
alike): each photo's channels standardised first; after the forward pass, each level's map averaged over its 3x3
neighbourhood (the paper's local patch aggregation), brought to the finest level's grid and concatenated (one
feature vector per cell); each cell's distance to its nearest memory-bank row is the map, smoothed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from defect_tf.anomaly.base import AnomalyMaps, Forward
from defect_tf.anomaly.images import standardised
from defect_tf.anomaly.maps import resize_map, smooth
from defect_tf.anomaly.patchcore.coreset import nearest_distances
from defect_tf.errors import BundleError

BANK_FILE = "memory_bank.npy"
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


def read_bank(folder: Path) -> np.ndarray:
    """The memory bank a bundle folder holds: a float32 matrix, read without pickle."""
    try:
        bank = np.load(folder / BANK_FILE, allow_pickle=False)
    except Exception as error:
        raise BundleError(f"{folder}: cannot read the PatchCore memory bank ({error})") from None
    if bank.ndim != 2 or bank.dtype != np.float32 or not len(bank):
        raise BundleError(f"{folder / BANK_FILE}: not a PatchCore memory bank (a float32 matrix)")
    return bank


class PatchCoreMaps(AnomalyMaps):
    name = "patchcore"
    exported_files = (BANK_FILE,)

    def __init__(self, image_size: int, settings: dict, forward: Forward | None = None,
                 bank: np.ndarray | None = None):
        super().__init__(image_size, {**DEFAULTS, **settings}, forward)
        self.bank = bank

    def network_input(self, inputs: np.ndarray) -> np.ndarray:
        return (standardised(inputs) if self.settings["standardise"] else inputs)[None]

    def patch_features(self, outputs: list[np.ndarray]) -> np.ndarray:
        """The feature model's maps for one photo -> (rows, cols, features)."""
        return aggregate([np.asarray(level)[0] for level in outputs], int(self.settings["neighbourhood"]))

    def map_from(self, outputs: list[np.ndarray], inputs: np.ndarray) -> np.ndarray:
        cells = self.patch_features(outputs)
        if cells.shape[-1] != self.bank.shape[1]:
            raise BundleError(f"the feature model gives {cells.shape[-1]} values per patch and the memory bank holds "
                              f"{self.bank.shape[1]}: they do not belong together")
        distances = np.sqrt(nearest_distances(cells.reshape(-1, cells.shape[-1]), self.bank))
        return smooth(resize_map(distances.reshape(cells.shape[:2]), inputs.shape[:2]))

    @classmethod
    def exported(cls, folder: Path, image_size: int, settings: dict, forward: Forward) -> PatchCoreMaps:
        return cls(image_size, settings, forward, read_bank(folder))
