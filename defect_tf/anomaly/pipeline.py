"""Classify, then outline: stage 1 (the classifier, any runtime) decides whether a photo is damaged; stage 2 (the
localiser) runs only on those it calls damaged and returns the outline, its area and boxes. Without a classifier
every photo goes to the localiser, whose own image threshold then decides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.anomaly.images import read_photo
from defect_tf.anomaly.regions import outline_overlay
from defect_tf.anomaly.store import Localization, Localizer
from defect_tf.data.sources import says_intact
from defect_tf.errors import ImageError
from defect_tf.io import output_folder
from defect_tf.io.file_names import UniqueNames, safe_file_name
from defect_tf.io.files import atomic_write
from defect_tf.runtime.predictions import Prediction


@dataclass
class Answer:
    image: str
    prediction: Prediction | None  # stage 1's (None without a classifier)
    localization: Localization | None  # stage 2's (None when stage 1 called the photo intact)

    def to_json(self) -> dict:
        record = self.prediction.as_dict() if self.prediction is not None else {"image": self.image}
        record["localization"] = self.localization.to_json() if self.localization is not None else None
        return record


def stage_one_damaged(prediction: Prediction, task: str) -> bool:
    """Whether the classifier calls the photo damaged: any attribute detected (multilabel, binary), or a class
    whose name does not say intact (multiclass: `good`, `ok`, `normal`, ...)."""
    if task == "multiclass":
        return any(says_intact(name) is not True for name in prediction.detected)
    return bool(prediction.detected)


def damage_score(prediction: Prediction, task: str) -> float:
    """Stage 1's belief that the photo is damaged, for ranking (the two stages' image AUROC): the highest attribute
    probability (multilabel, binary), or the probability of the classes whose names do not say intact (multiclass)."""
    if task == "multiclass":
        return float(sum(p for name, p in prediction.probabilities.items() if says_intact(name) is not True))
    return float(max(prediction.probabilities.values(), default=0.0))


class TwoStage:
    """The pipeline over a classifier (an `Inferencer`, or None) and a `Localizer`."""

    def __init__(self, classifier, localizer: Localizer):
        self.classifier, self.localizer = classifier, localizer

    def answer(self, paths: list[str]) -> tuple[list[Answer], list[ImageError]]:
        if self.classifier is None:
            predictions, errors = [None] * len(paths), []
            names = list(paths)
        else:
            found, errors = self.classifier.predict(paths)
            predictions, names = found, [p.image for p in found]
        answers = []
        for name, prediction in zip(names, predictions):
            localization = None
            if prediction is None or stage_one_damaged(prediction, self.classifier.metadata.task):
                try:  # stage 1, where there is one, has decided the photo is damaged: outline what is there
                    localization = self.localizer.locate(read_photo(name), None if prediction is None else True)
                except ImageError as error:
                    errors.append(error)
                    continue
            answers.append(Answer(name, prediction, localization))
        return answers, errors


def write_overlays(answers: list[Answer], folder: str | Path) -> dict[str, Path]:
    """`<folder>/<stem>_outline.png` per localised photo (names unique within the call): the outline and boxes
    drawn on the photo. Returns image -> file."""
    unique = UniqueNames()
    names = {answer.image: unique(safe_file_name(Path(answer.image).stem), "_outline.png")
             for answer in answers if answer.localization is not None}
    directory = output_folder.claim(folder, names.values(), "--localize")
    written = {}
    for answer in answers:
        if answer.image not in names:
            continue
        picture = outline_overlay(read_photo(answer.image), answer.localization.mask, answer.localization.regions)
        path = directory / names[answer.image]
        atomic_write(path, lambda temporary: _write_png(temporary, picture), "no older overlay was replaced")
        written[answer.image] = path
    return written


def _write_png(path: Path, picture: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(picture).save(path, format="PNG")
