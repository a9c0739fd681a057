"""DRAEM as an anomaly model: trained by gradient descent on intact photos with synthetic anomalies, a checkpoint
after every epoch (an interrupted fit continues from its last epoch), then a photo's map is the discriminative
network's per-pixel probability, smoothed."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Iterable

import keras
import numpy as np

from defect_tf.anomaly.base import AnomalyModel, Report, load_network
from defect_tf.anomaly.draem.losses import focal_loss, reconstruction_loss
from defect_tf.anomaly.draem.maps import DraemMaps
from defect_tf.anomaly.draem.network import draem_network
from defect_tf.anomaly.draem.synthesis import synthesise
from defect_tf.anomaly.images import model_input
from defect_tf.errors import DefectTFError
from defect_tf.io.files import atomic_write, write_text
from defect_tf.io.untrusted import UnreadableFileError, check_file, read_text
from defect_tf.limits import MAX_JSON_FILE_BYTES, MAX_MODEL_FILE_BYTES

MODEL_FILE = "model.keras"
STATE_FILE = "state.json"
DEFAULTS = {
    "width": 16,  # base channels of both networks (the paper: 128 and 64); docs/findings.md
    "depth": 5,  # levels of each network (at most 6: input sides are multiples of 32 = 2^5)
    "epochs": 40,
    "batch_size": 8,  # the paper's
    "learning_rate": 1e-3,  # Adam, cosine decay to zero over the run
}


class SyntheticAnomalies(keras.utils.PyDataset):
    """Batches of (photo with a synthetic anomaly, {clean photo, anomaly mask}): a square crop of each photo (at its
    working size) and a texture cropped from another photo. Seeded by (seed, epoch, batch), so a resumed run draws
    what the uninterrupted run would have."""

    def __init__(self, photos: list[np.ndarray], crop: int, batch_size: int, seed: int, epoch: int = 0):
        super().__init__()
        self.photos, self.crop, self.batch_size, self.seed, self.epoch = photos, crop, batch_size, seed, epoch
        self.order = self._order()

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.photos))

    def __len__(self) -> int:
        return math.ceil(len(self.photos) / self.batch_size)

    def _crop(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        top = int(rng.integers(0, photo.shape[0] - self.crop + 1))
        left = int(rng.integers(0, photo.shape[1] - self.crop + 1))
        return photo[top:top + self.crop, left:left + self.crop].astype(np.float32) / 255.0

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        clean, altered, masks = [], [], []
        for row in rows:
            image = self._crop(self.photos[row], rng)
            texture = self._crop(self.photos[int(rng.integers(len(self.photos)))], rng)
            changed, mask = synthesise(image, texture, rng)
            clean.append(image)
            altered.append(changed)
            masks.append(mask[..., None])
        return np.stack(altered), {"reconstruction": np.stack(clean), "mask": np.stack(masks)}

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()


class EpochSaved(keras.callbacks.Callback):
    """After every epoch: one progress line with its time, and the checkpoint (weights with the optimizer's state,
    then `state.json` naming them, each written atomically) that an interrupted fit resumes from."""

    def __init__(self, directory: Path | None, epochs: int, settings: dict, report: Report, earlier: float = 0.0):
        super().__init__()
        self.directory, self.epochs, self.settings, self.report = directory, epochs, settings, report
        self.started = self.fit_started = time.time()
        self.earlier = earlier  # seconds of training before a resume

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.time()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        self.report(f"epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', math.nan):.4f} (reconstruction "
                    f"{logs.get('reconstruction_loss', math.nan):.4f}, mask {logs.get('mask_loss', math.nan):.4f}), "
                    f"{time.time() - self.started:.0f} s")
        if self.directory is None or not math.isfinite(logs.get("loss", math.nan)):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epoch + 1:04d}.weights.h5"
        atomic_write(self.directory / weights, self.model.save_weights)
        seconds = self.earlier + time.time() - self.fit_started
        write_text(self.directory / STATE_FILE, json.dumps({"model": "draem", "settings": self.settings,
                                                            "epoch": epoch + 1, "weights_file": weights,
                                                            "seconds": round(seconds, 1)}))
        for stale in self.directory.glob("epoch-*.weights.h5"):
            if stale.name != weights:
                stale.unlink()


def saved_epoch(directory: Path) -> dict | None:
    """The checkpoint state in `directory` ({"settings", "epoch", "weights_file", "seconds"}), or None without one."""
    if not (directory / STATE_FILE).is_file():
        return None
    try:
        state = json.loads(read_text(directory / STATE_FILE, MAX_JSON_FILE_BYTES, "checkpoint state file"))
        state = {"settings": dict(state["settings"]), "epoch": int(state["epoch"]),
                 "weights_file": str(state["weights_file"]), "seconds": float(state.get("seconds", 0.0))}
    except (UnreadableFileError, ValueError, KeyError, TypeError) as error:
        raise DefectTFError(f"the checkpoint in {directory} is damaged ({error}); start a new run without --resume")
    if Path(state["weights_file"]).name != state["weights_file"] or state["epoch"] < 1:
        raise DefectTFError(f"the checkpoint in {directory} is damaged; start a new run without --resume")
    return state


class Draem(DraemMaps, AnomalyModel):
    files = (MODEL_FILE,)

    def __init__(self, image_size: int, settings: dict, network: keras.Model | None = None):
        super().__init__(image_size, {**DEFAULTS, **settings})
        s = self.settings
        self.network = network or draem_network(int(s["width"]), int(s["depth"]))

    def _compile(self, steps: int) -> None:
        schedule = keras.optimizers.schedules.CosineDecay(float(self.settings["learning_rate"]), max(steps, 1))
        self.network.compile(optimizer=keras.optimizers.Adam(schedule),
                             loss={"reconstruction": reconstruction_loss, "mask": focal_loss})

    def fit(self, photos: Iterable[np.ndarray], count: int, report: Report = print,
            checkpoint_dir: Path | None = None) -> None:
        s = self.settings
        inputs = [np.clip(model_input(photo, self.image_size), 0, 255).astype(np.uint8) for photo in photos]
        epochs, seed = int(s["epochs"]), int(s.get("seed", 0))
        state = saved_epoch(checkpoint_dir) if checkpoint_dir is not None else None
        start = 0
        crop = min(self.image_size, *(min(photo.shape[:2]) for photo in inputs))  # square, within every photo
        data = SyntheticAnomalies(inputs, crop, int(s["batch_size"]), seed)
        self._compile(epochs * len(data))
        if state is not None:
            if state["settings"] != s:
                raise DefectTFError(f"the checkpoint in {checkpoint_dir} is of a run with other settings; start a "
                                    "new run without --resume")
            self.network.optimizer.build(self.network.trainable_variables)
            path = checkpoint_dir / state["weights_file"]
            try:
                check_file(path, MAX_MODEL_FILE_BYTES, "checkpoint weights file")
                self.network.load_weights(path)
            except Exception as error:
                raise DefectTFError(f"the checkpoint in {checkpoint_dir} cannot be loaded ({error}); start a new "
                                    "run without --resume") from None
            start, self.earlier_seconds = state["epoch"], state["seconds"]
            data = SyntheticAnomalies(inputs, crop, int(s["batch_size"]), seed, epoch=start)
            report(f"resuming from epoch {start} of {epochs}")
        self.network.fit(data, epochs=epochs, initial_epoch=start, verbose=0,
                         callbacks=[EpochSaved(checkpoint_dir, epochs, s, report, self.earlier_seconds)])

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        # called eagerly: a traced predict function generalises to unknown sides after a few photo sizes, and
        # bilinear upsampling cannot take a side it does not know
        return [np.asarray(self.network(batch, training=False)["mask"])]

    def export_network(self) -> keras.Model:
        return keras.Model(self.network.inputs, self.network.get_layer("mask").output, name="draem_mask")

    def save(self, folder: Path) -> None:
        self.network.save(folder / MODEL_FILE)

    @classmethod
    def load(cls, folder: Path, image_size: int, settings: dict) -> Draem:
        return cls(image_size, settings, load_network(folder / MODEL_FILE, "DRAEM"))
