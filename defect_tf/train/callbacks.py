"""Training callbacks: the loss curve and history (kept across both phases, rewritten every epoch), early
stopping that resumes, and the EMA weights swap."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras

from defect_tf.evaluate.plots import plot_loss_curve
from defect_tf.io.files import write_text

HISTORY_FILE = "history.json"
LOSS_CURVE_FILE = "loss_curve.png"


class LossCurve(keras.callbacks.Callback):
    """Record each epoch's logs with its phase and wall time (`seconds`); rewrite `history.json` and
    `loss_curve.png` after every epoch.

    One instance is passed to every phase's `fit`, so the curve shows all phases on one epoch axis.
    Set `phase` before each `fit` call.
    """

    def __init__(self, output_dir: str | Path, records: list[dict] | None = None):
        super().__init__()
        self.output_dir = Path(output_dir)
        self.records: list[dict] = list(records or [])
        self.phase = "training"

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record = {"epoch": epoch + 1, "phase": self.phase}
        record.update({name: float(value) for name, value in (logs or {}).items()})
        record["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        record["seconds"] = round(time.perf_counter() - self.epoch_started, 2)  # training and validation
        self.records.append(record)
        self.save()

    def save(self) -> None:
        write_text(self.output_dir / HISTORY_FILE, json.dumps(self.records, indent=1))
        plot_loss_curve(self.records, self.output_dir / LOSS_CURVE_FILE)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that can start from a saved state (best value, wait, best weights) after `--resume`."""

    def __init__(self, *args, resume_from: dict | None = None, resume_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_from, self.resume_weights = resume_from, resume_weights

    def on_train_begin(self, logs=None) -> None:
        super().on_train_begin(logs)
        if self.resume_from:
            self.best, self.wait = self.resume_from["best"], self.resume_from["wait"]
            self.best_epoch = self.resume_from["best_epoch"]
            self.best_weights = self.resume_weights

    def patience_used_up(self) -> bool:
        return bool(self.resume_from) and self.resume_from["wait"] >= self.patience


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """With an optimiser's `use_ema`: validation, and every callback after this one at an epoch's end, see the
    moving average of the weights, so early stopping keeps the best *average* and a checkpoint saves it.

    A checkpoint taken at an epoch's end therefore holds the average in the model and the raw weights in the
    optimiser's average slots; a resumed run passes `average_in_model=True`, and the next epoch swaps them back.
    Place it first among the callbacks.
    """

    def __init__(self, average_in_model: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = average_in_model
