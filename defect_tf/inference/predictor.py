"""Running a trained model: probabilities for a dataset, and detections for image files."""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from defect_tf.bundle.store import Bundle
from defect_tf.data.images import read_image, read_photo, resize_image
from defect_tf.errors import DefectTFError, ImageError
from defect_tf.explain.heatmaps import GradCAM, overlay
from defect_tf.io import output_folder
from defect_tf.io.file_names import UniqueNames, safe_file_name
from defect_tf.io.files import atomic_write
from defect_tf.runtime.predictions import Prediction, label
from defect_tf.tasks import Task

PREDICT_BATCH = 32  # images per forward pass when predicting


def predict_probabilities(model: keras.Model, inputs, task: Task, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Probabilities per attribute (as `task` turns logits into them) for a batched dataset or an array of images.
    An array goes through `predict_on_batch` a batch at a time: `predict` costs about 130 ms of set-up per call,
    which a page answering one photo at a time would pay each time."""
    if isinstance(inputs, tf.data.Dataset):
        logits = model.predict(inputs, verbose=0)
    else:
        logits = np.concatenate([np.asarray(model.predict_on_batch(inputs[start:start + batch_size]))
                                 for start in range(0, len(inputs), batch_size)])
    return task.probabilities(logits)


class Predictor:
    """A loaded bundle ready to label images: decode, one batched forward pass, calibrated thresholds,
    and heatmap overlays for what it detects (the gradient model is built on first use, once)."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self._cam: GradCAM | None = None

    def _label(self, name: str, probabilities: np.ndarray) -> Prediction:
        return label([name], probabilities[None], self.bundle.metadata)[0]

    def predict(self, paths: list[str]) -> tuple[list[Prediction], list[ImageError]]:
        """Predict every readable image, a batch at a time (memory stays bounded however many are given);
        unreadable ones come back as errors, not exceptions."""
        predictions, errors = [], []
        for start in range(0, len(paths), PREDICT_BATCH):
            images, readable = [], []
            for path in paths[start:start + PREDICT_BATCH]:
                try:
                    images.append(read_image(path, self.bundle.image_size))
                    readable.append(str(path))
                except ImageError as error:
                    errors.append(error)
            if images:
                probabilities = predict_probabilities(self.bundle.model, np.stack(images), self.bundle.task)
                predictions += [self._label(path, row) for path, row in zip(readable, probabilities)]
        return predictions, errors

    def predict_photo(self, photo: np.ndarray, name: str = "photo") -> Prediction:
        """Predict one decoded, upright RGB photo (any resolution)."""
        image = resize_image(photo, self.bundle.image_size).numpy()
        return self._label(name, predict_probabilities(self.bundle.model, image[None], self.bundle.task)[0])

    def explain(self, photo: np.ndarray, attributes: list[str], max_side: int | None = None) -> dict[str, np.ndarray]:
        """Heatmap overlays for the named attributes (one backward pass), over the photo at its own resolution, or
        scaled down to `max_side` (the heatmaps are always computed from the photo as the model saw it)."""
        if self._cam is None:
            self._cam = GradCAM(self.bundle.model, self.bundle.metadata.backbone)
        image = resize_image(photo, self.bundle.image_size).numpy()
        indices = [self.bundle.attributes.index(name) for name in attributes]
        background = scaled_down(photo, max_side) if max_side else photo
        return {name: overlay(background, heatmap)
                for name, heatmap in zip(attributes, self._cam.heatmaps(image, indices))}

    def write_explanations(self, predictions: list[Prediction], directory: str | Path) -> dict[str, list[Path]]:
        """One overlay PNG per detected attribute of each predicted file, `<directory>/<stem>_<attribute>.png`.

        Names are unique within the call (a second `x.png` from another folder becomes `x-2_...`) and made
        of characters any file system takes; every file is checked after writing. Returns image -> paths.
        """
        names = overlay_names(predictions)
        directory = output_folder.claim(directory, [name for per_image in names.values() for name in per_image.values()],
                                        "--explain")
        written: dict[str, list[Path]] = {}
        for prediction in predictions:
            written[prediction.image] = []
            if not prediction.detected:
                continue
            for attribute, picture in self.explain(read_photo(prediction.image), prediction.detected).items():
                path = directory / names[prediction.image][attribute]
                atomic_write(path, lambda temporary: _write_png(temporary, picture), "no older heatmap was replaced")
                written[prediction.image].append(path)
        return written


def scaled_down(picture: np.ndarray, max_side: int) -> np.ndarray:
    """A picture whose longer side is at most `max_side` (area-averaged), or the picture itself if it already is."""
    height, width = picture.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return picture
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)


def overlay_names(predictions: list[Prediction]) -> dict[str, dict[str, str]]:
    """image -> attribute -> overlay file name, unique across all of `predictions`."""
    unique_stem = UniqueNames()
    stems = {prediction.image: unique_stem(safe_file_name(Path(prediction.image).stem)) for prediction in predictions}
    unique = UniqueNames()
    return {prediction.image: {attribute: unique(f"{stems[prediction.image]}_{safe_file_name(attribute)}", ".png")
                               for attribute in prediction.detected}
            for prediction in predictions}


def _write_png(path: Path, picture: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise DefectTFError(f"could not write {path}")
