"""Resumable training: the whole training state is saved after every epoch, so a run that is killed
(Ctrl-C, SIGTERM, power loss) continues with `train.py --resume` from its last completed epoch.

`<output>/checkpoint/` holds `state.json` (settings, phase, epoch, loss history, early-stopping
state) and the weights it names: model plus optimizer state of the last epoch, and the best
weights so far for early stopping. Files are written under temporary names and renamed, and
`state.json` last, so it always names complete files. The folder is removed when the run ends
with a saved bundle.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from defect_tf.errors import DefectTFError
from defect_tf.io.files import atomic_write, write_text
from defect_tf.io.untrusted import UnreadableFileError, check_file, read_bytes, read_text
from defect_tf.limits import MAX_JSON_FILE_BYTES, MAX_MODEL_FILE_BYTES

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
PHASES = ("warm-up", "fine-tune")
_INTACT = "the last epoch's checkpoint is intact (train.py --resume continues from it)"


@dataclass
class Checkpoint:
    """A saved training state, as read back by `read_checkpoint`."""

    directory: Path
    config: dict
    phase: str
    epoch: int  # epochs completed, counted across phases
    records: list[dict]
    weights_file: str
    early_stopping: dict | None
    attributes: list[str] | None = None  # the label header the run was trained on
    labels: dict[str, list[float]] | None = None  # image -> labels, as the run read them at its start
    split: dict[str, list[str]] | None = None  # split name -> images: the run's own split, reused on resume

    def foreign(self, what: str) -> DefectTFError:
        """The error for a checkpoint whose files do not fit the model its own settings build."""
        backbone = self.config.get("backbone", "?")
        return DefectTFError(f"the checkpoint in {self.directory} does not fit the run its settings describe "
                             f"(backbone {backbone}): {what}. It is another run's or damaged; start a new run "
                             "without --resume (it replaces the checkpoint)")

    def load_model_state(self, model: keras.Model) -> None:
        """Restore weights and optimizer state into a model compiled for the checkpoint's phase."""
        model.optimizer.build(model.trainable_variables)
        path = self.directory / self.weights_file
        try:
            check_file(path, MAX_MODEL_FILE_BYTES, "checkpoint weights file")
            with warnings.catch_warnings(record=True) as warned:  # Keras warns of each layer it skips
                warnings.simplefilter("always")
                model.load_weights(path)
            if any("Skipping" in str(warning.message) for warning in warned):
                raise ValueError("layers skipped")
        except UnreadableFileError as error:
            raise self.foreign(error.reason) from None
        except Exception:  # Keras's own errors on weights of another shape, layer count or format
            raise self.foreign(f"{self.weights_file} holds other layers or shapes than the model") from None

    def best_weights(self, model: keras.Model) -> list[np.ndarray] | None:
        """Early stopping's best weights so far, checked against `model`'s own weights, one by one."""
        if not self.early_stopping or not self.early_stopping.get("best_weights_file"):
            return None
        name = str(self.early_stopping["best_weights_file"])
        try:
            data = read_bytes(self.directory / name, MAX_MODEL_FILE_BYTES, "checkpoint weights file")
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        except UnreadableFileError as error:
            raise self.foreign(error.reason) from None
        except Exception:  # NumPy's and zipfile's errors (NumPy's would advise allow_pickle=True: never that)
            raise self.foreign(f"{name} is not an array file this tool wrote") from None
        wanted = [tuple(weight.shape) for weight in model.get_weights()]
        if [tuple(weight.shape) for weight in weights] != wanted:
            raise self.foreign(f"{name} holds {len(weights)} arrays that are not the model's {len(wanted)}")
        return weights


def read_checkpoint(output_dir: str | Path) -> Checkpoint:
    """The checkpoint of an interrupted run in `output_dir`, or a DefectTFError saying why there is none."""
    directory = Path(output_dir) / CHECKPOINT_DIR
    if not (directory / STATE_FILE).is_file():
        finished = (Path(output_dir) / "bundle").is_dir()
        raise DefectTFError(f"nothing to resume in {output_dir}: "
                            + ("its run finished and saved its bundle" if finished
                               else "no checkpoint (a run saves one after its first epoch)"))
    broken = (f"the checkpoint in {directory} is damaged ({{}}); it cannot be resumed: start a new run without "
              "--resume (it replaces the checkpoint)")
    try:
        state = json.loads(read_text(directory / STATE_FILE, MAX_JSON_FILE_BYTES, "checkpoint state file"))
        checkpoint = Checkpoint(directory, dict(state["config"]), str(state["phase"]), int(state["epoch"]),
                                list(state["records"]), str(state["weights_file"]), state.get("early_stopping"),
                                state.get("attributes"), state.get("labels"), state.get("split"))
    except UnreadableFileError as error:
        raise DefectTFError(broken.format(error.reason)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DefectTFError(broken.format(f"{STATE_FILE}: {type(error).__name__} {error}")) from None
    if checkpoint.phase not in PHASES or checkpoint.epoch < 0:
        raise DefectTFError(broken.format(f"{STATE_FILE}: phase {checkpoint.phase!r}, epoch {checkpoint.epoch}"))
    if checkpoint.early_stopping is not None and not isinstance(checkpoint.early_stopping, dict):
        raise DefectTFError(broken.format(f"{STATE_FILE}: early stopping state {str(checkpoint.early_stopping)[:40]}"))
    needed = [checkpoint.weights_file]
    if checkpoint.early_stopping and checkpoint.early_stopping.get("best_weights_file"):
        needed.append(str(checkpoint.early_stopping["best_weights_file"]))
    outside = [name for name in needed if Path(name).name != name or name.startswith(".")]
    if outside:
        raise DefectTFError(broken.format(f"{STATE_FILE} names files outside the checkpoint: {', '.join(outside)}"))
    missing = [name for name in needed if not (directory / name).is_file()]
    if missing:
        raise DefectTFError(broken.format(f"{', '.join(missing)} missing"))
    return checkpoint


def remove_checkpoint(output_dir: str | Path) -> None:
    shutil.rmtree(Path(output_dir) / CHECKPOINT_DIR, ignore_errors=True)


def _save_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    with open(path, "wb") as file:
        np.savez(file, *arrays)


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, save what `--resume` needs; place it after the loss curve and early stopping."""

    def __init__(self, output_dir: str | Path, config: dict, run: dict, curve, early_stopping=None):
        """`run`: what resuming must find unchanged (`attributes`, `labels`, `split`; see `Checkpoint`)."""
        super().__init__()
        self.directory = Path(output_dir) / CHECKPOINT_DIR
        self.config, self.run, self.curve, self.early_stopping = config, run, curve, early_stopping

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not math.isfinite((logs or {}).get("loss", math.nan)):
            return  # never checkpoint a diverged model
        self.directory.mkdir(parents=True, exist_ok=True)
        weights_file = f"epoch-{epoch + 1:04d}.weights.h5"
        atomic_write(self.directory / weights_file, self.model.save_weights, _INTACT)
        keep = {weights_file, STATE_FILE}
        stopping = None
        if self.early_stopping is not None:
            stop = self.early_stopping
            best_file = f"best-{stop.best_epoch + 1:04d}.npz"
            if stop.best_epoch == epoch and stop.best_weights is not None:
                atomic_write(self.directory / best_file, lambda path: _save_arrays(path, stop.best_weights), _INTACT)
            stopping = {"best": stop.best, "wait": stop.wait, "best_epoch": stop.best_epoch,
                        "best_weights_file": best_file if (self.directory / best_file).exists() else None}
            keep.add(best_file)
        state = {"config": self.config, **self.run, "phase": self.curve.phase, "epoch": epoch + 1,
                 "records": self.curve.records, "weights_file": weights_file, "early_stopping": stopping}
        write_text(self.directory / STATE_FILE, json.dumps(state), _INTACT)
        for stale in self.directory.iterdir():
            if stale.name not in keep:
                stale.unlink()
