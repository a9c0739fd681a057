"""PatchCore's answer around its feature model, in NumPy (no TensorFlow, so an exported feature model answers
alike): each photo's channels standardised first; after the forward pass, each level's map averaged over its 3x3
neighbourhood (the paper's local patch aggregation), brought to the finest level's grid and concatenated (one
feature vector per cell); each cell's distance to its nearest memory-bank row, measured against the distances
intact photos have at the same place (`by_place`), is the map, smoothed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from defect_tf.anomaly.base import AnomalyMaps, Forward
from defect_tf.anomaly.images import standardised
from defect_tf.anomaly.maps import SMOOTHING_SIGMA, resize_map, smooth
from defect_tf.anomaly.patchcore.coreset import nearest_distances
from defect_tf.anomaly.patchcore.head import HEAD_FILE, DefectHead, outline_cells, read_head
from defect_tf.errors import BundleError

BANK_FILE = "memory_bank.npy"
DEFAULTS = {
    "backbone": "efficientnet_lite0",
    # 1/8, 1/16 and 1/32 of the side: on the magnetic tiles P3 + P4 (the paper's layers 2 and 3 of a ResNet) reached
    # image / pixel AUROC 0.818 / 0.777 and adding P5 0.834 / 0.792, every defect type up (docs/findings.md)
    "levels": ["P3", "P4", "P5"],
    "neighbourhood": 3,
    # rows kept in the memory bank. On the magnetic tiles (192 px) 20,000 rows raise validation pixel AUROC 0.880 ->
    # 0.889, all of it against intact photos (within defective ones 0.806 -> 0.804), and defective photos'
    # defect-free halves rank above intact photos' at 0.812 against 0.740: the larger bank sees the set's all-over
    # difference between defective and intact photos, not the defects, at about twice the cost (docs/findings.md)
    "coreset_size": 10_000,
    "max_patches": 200_000,  # rows drawn from all photos before the coreset is chosen (bounds memory and time)
    "standardise": True,  # each photo's channels to one mean and spread first (a first exploration: docs/findings.md)
    # the share of intact train photos kept out of the memory bank to learn each place's usual distance
    # (anomaly/patchcore/model.py `held_out`; 0: the map stays the raw distance). On the magnetic tiles image /
    # pixel AUROC 0.876 / 0.808 raw, 0.944 / 0.816 measured by place (docs/findings.md)
    "place_holdout": 0.1,
    # the map's Gaussian, in pixels of the model's input. On the magnetic tiles' validation photos (192 px) 8, 16
    # and 32 px raise pixel AUROC 0.880 -> 0.886, 0.892, 0.892 and coverage 0.662 -> 0.731 at 32 px, by drawing
    # larger outlines: IoU 0.269 -> 0.211, PRO 0.803 -> 0.718 (docs/findings.md); kept at 4 px
    "smoothing": SMOOTHING_SIGMA,
}
PLACE_GRID = 16  # places per side, as fractions of the photo's height and width


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


def place_statistics(cell_maps: list[np.ndarray]) -> dict[str, list]:
    """Mean and spread of intact photos' cell distances at each place of a PLACE_GRID x PLACE_GRID grid over the
    photo (rows and columns as fractions of its sides), as bundle settings. The spread is floored at half its
    median, so a place where every intact photo agrees does not blow up small differences."""
    grids = np.stack([_to_grid(cells, (PLACE_GRID, PLACE_GRID)) for cells in cell_maps])
    mean, spread = grids.mean(0), grids.std(0)
    spread = np.maximum(spread, max(0.5 * float(np.median(spread)), 1e-6))
    return {"place_mean": mean.round(6).tolist(), "place_spread": spread.round(6).tolist()}


def by_place(cells: np.ndarray, settings: dict) -> np.ndarray:
    """A photo's cell distances as intact photos' spreads above their mean at the same place (the raw distances
    when the bundle holds no place statistics). Borders and other places where intact photos differ most from
    the bank no longer outscore a defect elsewhere (docs/findings.md)."""
    if "place_mean" not in settings:
        return cells
    mean, spread = (np.asarray(settings[key], np.float32) for key in ("place_mean", "place_spread"))
    return (cells - _to_grid(mean, cells.shape)) / _to_grid(spread, cells.shape)


def settings_problems(settings: dict) -> list[str]:
    """What is wrong with a bundle's map settings: the smoothing a number from 0 to 64 px; the place statistics
    none, or two PLACE_GRID-square grids with the spread above 0."""
    smoothing = settings.get("smoothing")
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing <= 64:
        return [f"smoothing must be a number of pixels from 0 to 64, not {repr(smoothing)[:40]}"]
    if "head" in settings and not _is_head_setting(settings["head"]):
        return ["head must hold a weight from 0 to 100, a context from 1 to 63 cells and a floor, if any, from -100 "
                "to 0"]
    if "place_mean" not in settings and "place_spread" not in settings:
        return []
    try:
        mean, spread = (np.asarray(settings[key], np.float64) for key in ("place_mean", "place_spread"))
    except (KeyError, TypeError, ValueError):
        return ["place_mean and place_spread must both be grids of numbers"]
    if mean.shape != (PLACE_GRID, PLACE_GRID) or spread.shape != mean.shape:
        return [f"place_mean and place_spread must be {PLACE_GRID} x {PLACE_GRID} grids"]
    if not (np.isfinite(mean).all() and np.isfinite(spread).all() and (spread > 0).all()):
        return ["place_mean must be finite and place_spread finite and above 0"]
    return []


def checked_settings(settings: dict) -> dict:
    """PatchCore's settings with their defaults, or a one-line BundleError listing what cannot be used."""
    settings = {**DEFAULTS, **settings}
    problems = settings_problems(settings)
    if problems:
        raise BundleError("the localiser's bundle.json holds PatchCore settings that cannot be used: "
                          + "; ".join(problems))
    return settings


def _is_head_setting(head) -> bool:
    if not isinstance(head, dict):
        return False
    weight, context, floor = head.get("weight"), head.get("context"), head.get("floor", 0.0)
    return (not isinstance(weight, bool) and isinstance(weight, (int, float)) and 0 <= weight <= 100
            and not isinstance(context, bool) and isinstance(context, int) and 1 <= context <= 63
            and not isinstance(floor, bool) and isinstance(floor, (int, float)) and -100 <= floor <= 0)


def _to_grid(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A 2-D map resampled (bilinear) to `shape`."""
    values = np.asarray(values, np.float32)
    return ndimage.zoom(values, (shape[0] / values.shape[0], shape[1] / values.shape[1]), order=1, grid_mode=True,
                        mode="nearest")


def read_parts(folder: Path, settings: dict) -> tuple[np.ndarray, DefectHead | None]:
    """The memory bank a bundle folder holds, and its defect head when its settings name one."""
    settings = checked_settings(settings)
    bank = read_bank(folder)
    head = read_head(folder, bank.shape[1], settings["head"]["context"]) if "head" in settings else None
    return bank, head


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
                 bank: np.ndarray | None = None, head: DefectHead | None = None):
        super().__init__(image_size, checked_settings(settings), forward)
        self.bank, self.head = bank, head

    @classmethod
    def bundle_files(cls, settings: dict) -> tuple[str, ...]:
        return (BANK_FILE, HEAD_FILE) if "head" in settings else (BANK_FILE,)

    def network_input(self, inputs: np.ndarray) -> np.ndarray:
        return (standardised(inputs) if self.settings["standardise"] else inputs)[None]

    def patch_features(self, outputs: list[np.ndarray]) -> np.ndarray:
        """The feature model's maps for one photo -> (rows, cols, features)."""
        return aggregate([np.asarray(level)[0] for level in outputs], int(self.settings["neighbourhood"]))

    def map_from(self, outputs: list[np.ndarray], inputs: np.ndarray) -> np.ndarray:
        return self.maps_from(outputs, inputs)[0]

    def maps_from(self, outputs: list[np.ndarray], inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.cell_maps(self.patch_features(outputs), inputs.shape[:2])

    def cell_maps(self, cells: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
        """`maps_from` a photo's cells, at the input's `shape`: the distances measured by place, plus the defect
        head's score raised to its floor when there is a head (`outline_cells`; the photo is then scored on the
        distances alone: the head also scores stretches of intact photos, which would rank photos worse;
        docs/findings.md)."""
        if cells.shape[-1] != self.bank.shape[1]:
            raise BundleError(f"the feature model gives {cells.shape[-1]} values per patch and the memory bank holds "
                              f"{self.bank.shape[1]}: they do not belong together")
        cells = np.asarray(cells, np.float32)
        place = by_place(self.cell_distances(cells), self.settings)
        if self.head is None:
            return self.finished(place, shape), None
        head = self.settings["head"]
        outline = outline_cells(place, self.head.cell_scores(cells), float(head["weight"]), head.get("floor"))
        return self.finished(outline, shape), self.finished(place, shape)

    def finished(self, cell_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """A map of cells -> the map at the input's `shape` (height, width), smoothed as every map is."""
        return smooth(resize_map(cell_map, shape), float(self.settings["smoothing"]))

    def cell_distances(self, cells: np.ndarray) -> np.ndarray:
        """(rows, cols, features) -> each cell's distance to its nearest memory-bank row (rows, cols)."""
        return np.sqrt(nearest_distances(cells.reshape(-1, cells.shape[-1]), self.bank)).reshape(cells.shape[:2])

    @classmethod
    def exported(cls, folder: Path, image_size: int, settings: dict, forward: Forward) -> PatchCoreMaps:
        return cls(image_size, settings, forward, *read_parts(folder, settings))
