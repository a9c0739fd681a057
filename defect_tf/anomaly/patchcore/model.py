"""PatchCore as an anomaly model: no training, one pass fills a memory bank with the pretrained backbone's
mid-level patch features and a greedy coreset keeps the rows that cover the rest; a few intact photos kept out of
the bank then give each place of a photo its usual distance (anomaly/patchcore/maps.py turns a photo's features
into its map).

The feature model (saved as `model.keras`, so it exports like the classifier) takes a photo at its working size
and returns the backbone's maps at the chosen levels."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import keras
import numpy as np

from defect_tf.anomaly.base import AnomalyModel, Report, load_network
from defect_tf.anomaly.images import model_input, working_size
from defect_tf.anomaly.patchcore import head as defect_head
from defect_tf.anomaly.patchcore.coreset import greedy_coreset
from defect_tf.anomaly.patchcore.maps import BANK_FILE, PatchCoreMaps, place_statistics, read_parts
from defect_tf.errors import BundleError
from defect_tf.models.features import feature_extractor
from defect_tf.models.registry import get_backbone
from defect_tf.progress_bar import progress_bar

MODEL_FILE = "model.keras"
PLACE_MIN_PHOTOS, PLACE_MAX_PHOTOS = 5, 50  # intact photos kept out of the memory bank for the place statistics


def held_out(count: int, share: float) -> set[int]:
    """The indices (evenly spread) of the photos kept out of the memory bank for the place statistics: `share` of
    `count`, from PLACE_MIN_PHOTOS to PLACE_MAX_PHOTOS; none with fewer than three times PLACE_MIN_PHOTOS photos
    (or share 0), so the bank keeps most of a small set."""
    if share <= 0 or count < 3 * PLACE_MIN_PHOTOS:
        return set()
    kept = min(PLACE_MAX_PHOTOS, max(PLACE_MIN_PHOTOS, int(count * share)))
    return {int((i + 0.5) * count / kept) for i in range(kept)}


def build_feature_model(backbone: str, levels: list[str], weights: str | None) -> keras.Model:
    """Photo (any size, multiples of 32) -> the backbone's maps at `levels`."""
    entry = get_backbone(backbone)
    trunk = entry.constructor(include_top=False, weights=None, input_shape=(None, None, 3))
    if weights == "imagenet":
        if entry.imagenet is None:
            raise BundleError(f"{backbone} has no ImageNet weights available offline for PatchCore")
        entry.load_weights(trunk, entry.imagenet(backbone))
    return feature_extractor(trunk, backbone, levels)


class PatchCore(PatchCoreMaps, AnomalyModel):
    files = (MODEL_FILE,)
    learns_from_masks = True

    def __init__(self, image_size: int, settings: dict, features: keras.Model | None = None,
                 bank: np.ndarray | None = None, head: defect_head.DefectHead | None = None):
        super().__init__(image_size, settings, bank=bank, head=head)
        s = self.settings
        self.features = features or build_feature_model(s["backbone"], list(s["levels"]), s.get("weights", "imagenet"))

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        maps = self.features.predict_on_batch(batch)
        return [np.asarray(level) for level in (maps if isinstance(maps, (list, tuple)) else [maps])]

    def export_network(self) -> keras.Model:
        return self.features

    def fit(self, photos: Iterable[np.ndarray], count: int, report: Report = print,
            checkpoint_dir: Path | None = None) -> None:  # one pass: nothing to resume
        seed = self.settings.get("seed", 0)
        rng = np.random.default_rng(seed)
        for key in ("place_mean", "place_spread", "head"):  # a model fitted again learns these again
            self.settings.pop(key, None)
        self.head = None
        held = held_out(count, float(self.settings["place_holdout"]))
        per_photo = max(1, -(-int(self.settings["max_patches"]) // max(count - len(held), 1)))
        rows, kept = [], []
        for index, photo in enumerate(photos):
            inputs = model_input(photo, self.image_size)
            if index in held:
                kept.append(inputs)
                continue
            cells = self.patch_features(self.forward(self.network_input(inputs)))
            cells = cells.reshape(-1, cells.shape[-1])
            rows.append(self.photo_rows(cells, per_photo, rng) if len(cells) > per_photo else cells)
        bank = np.concatenate(rows)
        size = min(int(self.settings["coreset_size"]), len(bank))
        report(f"coreset: {size:,} of {len(bank):,} patch features ({bank.shape[1]} values each)")
        with progress_bar(total=size, desc="coreset", unit="row", leave=False, unit_scale=True) as bar:
            self.bank = bank[greedy_coreset(bank, size, seed=seed, report=bar.update)]
        if kept:
            cell_maps = [self.cell_distances(self.patch_features(self.forward(self.network_input(inputs))))
                         for inputs in progress_bar(kept, desc="places", unit="photo", leave=False)]
            self.settings.update(place_statistics(cell_maps))
            report(f"each place's usual distance from {len(kept)} intact photos kept out of the memory bank")
        else:
            report(f"{count} intact photos: too few to keep some out for each place's usual distance (at least "
                   f"{3 * PLACE_MIN_PHOTOS} needed); the map is the raw distance")

    def photo_rows(self, cells: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` of one photo's patch features (rows of `cells`, more than `count`) for the pool the memory bank's
        coreset is chosen from: drawn at random, so the pool stands for every photo alike."""
        return cells[rng.choice(len(cells), count, replace=False)]

    def learn_defects(self, intact: list[np.ndarray], defects: list[np.ndarray], masks: list[np.ndarray | None],
                      report: Report = print, whole: bool = False) -> tuple[list, list] | None:
        """The defect head (anomaly/patchcore/head.py), learnt from the labelled defects with a mask and up to
        MAX_INTACT_PHOTOS intact photos. Each photo it learns from is answered by a head fitted on the other
        folds; the rest by the final head, fitted on all of them."""
        masked = [i for i, mask in enumerate(masks) if mask is not None and mask.any()]
        masked = [masked[i] for i in defect_head.spread_choice(len(masked), defect_head.MAX_DEFECT_PHOTOS)]
        if len(masked) < defect_head.MIN_MASKED_DEFECTS:
            report(f"no defect head: {len(masked)} labelled defect(s) with a mask among the validation photos "
                   f"(at least {defect_head.MIN_MASKED_DEFECTS} needed)")
            return None
        photos = list(intact) + list(defects)
        chosen_intact = defect_head.spread_choice(len(intact), defect_head.MAX_INTACT_PHOTOS)
        settings = {**defect_head.HEAD_DEFAULTS, **self.settings.get("head", {})}
        cells, grids = {}, {}
        for index in progress_bar(chosen_intact + [len(intact) + i for i in masked], desc="defect head",
                                  unit="photo", leave=False):
            found = self.patch_features(self.forward(self.network_input(model_input(photos[index], self.image_size))))
            cells[index] = found.astype(np.float16)  # half the memory; answers from them differ by rounding only
            mask = masks[index - len(intact)] if index >= len(intact) else np.zeros(photos[index].shape[:2], bool)
            grids[index] = defect_head.cell_mask(mask, found.shape[:2])
        folds = min(defect_head.MAX_FOLDS, len(masked))
        heads, final = defect_head.held_out_heads(cells, grids, folds, settings, int(self.settings.get("seed", 0)))
        self.settings["head"] = {"weight": float(settings["weight"]), "context": int(settings["context"]),
                                 **({} if whole else {"floor": float(settings["floor"])})}  # no floor: the whole head
        answers = []
        for index, photo in enumerate(photos):
            self.head = heads.get(index, final)
            if index in cells:
                shape = working_size(*photo.shape[:2], self.image_size)
                answers.append(self.answer_from(self.cell_maps(cells[index], shape), photo.shape[:2]))
            else:
                answers.append(self.answer(photo))
        self.head = final
        report(f"defect head: learnt from {len(masked)} labelled defect mask(s) and {len(chosen_intact)} intact "
               f"photo(s); the thresholds come from {folds}-fold held-out answers")
        return answers[:len(intact)], answers[len(intact):]

    def save(self, folder: Path) -> None:
        self.features.save(folder / MODEL_FILE)
        np.save(folder / BANK_FILE, self.bank.astype(np.float32), allow_pickle=False)
        if self.head is not None:
            self.head.save(folder / defect_head.HEAD_FILE)

    @classmethod
    def load(cls, folder: Path, image_size: int, settings: dict) -> PatchCore:
        features = load_network(folder / MODEL_FILE, "PatchCore")
        bank, head = read_parts(folder, settings)
        shapes = features.output_shape if isinstance(features.output_shape, list) else [features.output_shape]
        if sum(shape[-1] for shape in shapes) != bank.shape[1]:
            raise BundleError(f"{folder}: {MODEL_FILE} and {BANK_FILE} do not belong together")
        return cls(image_size, settings, features, bank, head)
