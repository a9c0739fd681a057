"""PatchCore's defect head: a linear model over the cells' features that learns, from the few labelled defects'
masks, what the memory bank misses. The bank compares each cell with intact cells one at a time, so a band of
another texture that looks like some intact texture elsewhere is not seen; the head also sees the cells around
and how a cell differs from its row and its column. Its score is added to the map (docs/findings.md, "A head
trained with a few labelled defect masks").

Answering is NumPy over a few arrays kept in `defect_head.npz` (read without pickle), so an exported localiser
runs it without TensorFlow; fitting uses scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from defect_tf.errors import BundleError

HEAD_FILE = "defect_head.npz"
# On the magnetic tiles (192 px, 100 labelled masks) weight, context and dims were chosen by cross-validation on
# the validation photos only. The floor keeps the head from lowering the bank's map: the whole head (no floor)
# outlined a defect type whose masks it never saw worse than the bank alone (validation, one type left out: crack
# PRO 0.670 -> 0.499), the floor at 0 within 0.014 of the bank (docs/findings.md)
HEAD_DEFAULTS = {"weight": 0.5, "context": 7, "dims": 64, "floor": 0.0}
MIN_MASKED_DEFECTS = 5  # labelled defects with a non-empty mask needed to train the head
MAX_FOLDS = 5  # the out-of-fold scores the thresholds are calibrated on
# validation photos the head learns from, at most (they bound its memory: every cell of each is kept); the rest
# are answered by the final head
MAX_INTACT_PHOTOS, MAX_DEFECT_PHOTOS = 100, 200
INTACT_CELL_SHARE = 0.3  # of the defect-free cells, drawn to train the head (every defect cell is kept)
ARRAYS = ("pca_mean", "pca_components", "feature_mean", "feature_spread", "coef", "intercept")


def context_features(cells: np.ndarray, context: int) -> np.ndarray:
    """(rows, cols, d) cells -> (rows * cols, 4d): each cell, the mean of the `context` x `context` cells around
    it, and the cell minus the mean of its row and minus the mean of its column."""
    rows, cols, depth = cells.shape
    around = ndimage.uniform_filter(cells, size=(context, context, 1), mode="nearest")
    parts = [cells, around, cells - cells.mean(1, keepdims=True), cells - cells.mean(0, keepdims=True)]
    return np.concatenate([part.reshape(rows * cols, depth) for part in parts], axis=1)


def cell_mask(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A photo's defect mask on the cells' grid: a cell is a defect when most of it is (bilinear share > 0.5)."""
    return ndimage.zoom(np.asarray(mask, np.float32), (grid[0] / mask.shape[0], grid[1] / mask.shape[1]),
                        order=1) > 0.5


class DefectHead:
    """Cell features reduced by PCA, their context features standardised, then a logistic regression's score."""

    def __init__(self, arrays: dict[str, np.ndarray], context: int):
        self.arrays, self.context = arrays, int(context)

    def cell_scores(self, cells: np.ndarray) -> np.ndarray:
        """(rows, cols, features) -> the head's score per cell (rows, cols): above 0 where it sees a defect."""
        a = self.arrays
        flat = np.asarray(cells, np.float32).reshape(-1, cells.shape[-1])
        reduced = ((flat - a["pca_mean"]) @ a["pca_components"].T).reshape(*cells.shape[:2], -1)
        features = (context_features(reduced, self.context) - a["feature_mean"]) / a["feature_spread"]
        return (features @ a["coef"] + a["intercept"]).reshape(cells.shape[:2]).astype(np.float32)

    @classmethod
    def fit(cls, cells: list[np.ndarray], masks: list[np.ndarray], dims: int, context: int,
            seed: int = 0) -> DefectHead:
        """Learn from photos' cells (rows, cols, features) and their masks on the same grids (True: defect)."""
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(seed)
        flat = np.concatenate([c.reshape(-1, c.shape[-1]) for c in cells]).astype(np.float32)
        pca = PCA(min(dims, *flat.shape), random_state=seed).fit(flat[::3] if len(flat) >= 3 * dims else flat)
        arrays = {"pca_mean": pca.mean_.astype(np.float32), "pca_components": pca.components_.astype(np.float32)}
        reduced = [((c.reshape(-1, c.shape[-1]).astype(np.float32) - arrays["pca_mean"]) @ arrays["pca_components"].T)
                   .reshape(*c.shape[:2], -1) for c in cells]
        x = np.concatenate([context_features(r, context) for r in reduced])
        y = np.concatenate([np.asarray(m, bool).ravel() for m in masks])
        keep = y | (rng.random(len(y)) < INTACT_CELL_SHARE)
        x, y = x[keep], y[keep]
        arrays["feature_mean"], arrays["feature_spread"] = x.mean(0), x.std(0) + 1e-6
        model = LogisticRegression(C=0.1, max_iter=300, class_weight="balanced")
        model.fit((x - arrays["feature_mean"]) / arrays["feature_spread"], y)
        arrays["coef"], arrays["intercept"] = model.coef_[0], np.asarray(model.intercept_[0])
        return cls({key: np.asarray(value, np.float32) for key, value in arrays.items()}, context)

    def save(self, path: Path) -> None:
        with open(path, "wb") as file:
            np.savez(file, **self.arrays)


def outline_cells(place: np.ndarray, head_scores: np.ndarray, weight: float, floor: float | None) -> np.ndarray:
    """The outline's cells: the bank's distances measured by place plus `weight` times the head's score, the score
    first raised to `floor` (at 0 the head can only add to the bank's map; None: the whole score, as bundles
    written before the floor)."""
    scores = head_scores if floor is None else np.maximum(head_scores, floor)
    return place + weight * scores


def spread_choice(count: int, most: int) -> list[int]:
    """Up to `most` of `count` indices, evenly spread."""
    kept = min(count, most)
    return sorted({int((i + 0.5) * count / kept) for i in range(kept)})


def held_out_heads(cells: dict[int, np.ndarray], grids: dict[int, np.ndarray], folds: int, settings: dict,
                   seed: int = 0) -> tuple[dict[int, DefectHead], DefectHead]:
    """For each photo (index -> its cells and its mask on their grid), the head fitted on the other `folds` - 1
    folds (so its answer can set thresholds honestly), and the final head, fitted on every photo."""
    def fitted(indices: list[int]) -> DefectHead:
        return DefectHead.fit([cells[i] for i in indices], [grids[i] for i in indices], int(settings["dims"]),
                              int(settings["context"]), seed)

    photos = list(cells)
    fold_of = dict(zip(photos, np.random.default_rng(seed).permutation(len(photos)) % folds))
    heads = {}
    for fold in range(folds):
        head = fitted([i for i in photos if fold_of[i] != fold])
        heads.update({i: head for i in photos if fold_of[i] == fold})
    return heads, fitted(photos)


def read_head(folder: Path, features: int, context: int) -> DefectHead:
    """The defect head a bundle folder holds (read without pickle), checked against the `features` values per
    cell the memory bank holds; a one-line BundleError otherwise."""
    try:
        with np.load(folder / HEAD_FILE, allow_pickle=False) as saved:
            arrays = {name: np.asarray(saved[name]) for name in ARRAYS}
    except Exception as error:
        raise BundleError(f"{folder}: cannot read the PatchCore defect head ({error})") from None
    dims = arrays["pca_components"].shape[0] if arrays["pca_components"].ndim == 2 else -1
    shapes = {"pca_mean": (features,), "pca_components": (dims, features), "feature_mean": (4 * dims,),
              "feature_spread": (4 * dims,), "coef": (4 * dims,), "intercept": ()}
    wrong = [name for name, shape in shapes.items()
             if arrays[name].shape != shape or arrays[name].dtype != np.float32 or not np.isfinite(arrays[name]).all()]
    if dims < 1 or wrong or (arrays["feature_spread"] <= 0).any():
        raise BundleError(f"{folder / HEAD_FILE}: not a defect head for {features}-value cells "
                          f"({', '.join(wrong) or 'no components'})")
    return DefectHead(arrays, context)
