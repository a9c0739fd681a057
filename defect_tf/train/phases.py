"""The two phases of a run over one model: warm-up, then fine-tuning with early stopping.

With pretrained weights this is Keras's transfer-learning recipe: phase 1 trains only the head on a frozen
backbone; phase 2 unfreezes the backbone's top layers (BatchNormalization stays frozen) at a lower learning rate.
With `--linear-probe on`, phase 1 is the linear probe instead (train/head_fit.py: the head fitted to convergence on
the frozen features, LP-FT); phase 2 then starts from the probe's validation loss and weights, so early stopping
keeps the probe if fine-tuning never beats it. A pretrained run with too few validation images trains on them
(train/preparation.py): then every epoch runs and the last is kept.
With `--weights none` a frozen backbone would be random features, so both phases train every layer,
BatchNormalization included: phase 1 at `lr`, phase 2 at `finetune_lr`. Each phase resumes from the checkpoint of
an interrupted run that stopped in it; a checkpoint is saved after every epoch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras.callbacks import TerminateOnNaN

from defect_tf.errors import DefectTFError
from defect_tf.models.classifier import set_trainable_top, top_layers
from defect_tf.models.registry import get_backbone
from defect_tf.train.callbacks import EMAWeights, LossCurve, ResumableEarlyStopping
from defect_tf.train.checkpoints import Checkpoint, EpochCheckpoint
from defect_tf.train.config import TrainConfig, checkpoint_settings
from defect_tf.train.head_fit import run_probe
from defect_tf.train.optimizers import ema_momentum, make_optimizer
from defect_tf.train.strategy import Devices
from defect_tf.train.worker_loop import fit_on_workers


def _stop_if_diverged(records: list[dict], learning_rate: float) -> None:
    if records and not np.isfinite(records[-1].get("loss", np.nan)):
        raise DefectTFError(f"training diverged (the loss became NaN or infinite at epoch {records[-1]['epoch']}); "
                            f"try a lower learning rate than {learning_rate}")


class TwoPhases:
    """Warm-up and fine-tuning of `model` on `train_data`, validated on `val_data` (None: no early stopping), each
    phase resumable."""

    def __init__(self, model: keras.Model, loss, config: TrainConfig, train_data, val_data, steps: int,
                 output: Path, record: dict, pretrained: bool, resume: Checkpoint | None, log, devices: Devices,
                 probe_data=None, probe_labels: np.ndarray | None = None):
        self.model, self.loss, self.config, self.output, self.record = model, loss, config, output, record
        # the linear probe: the training images in order, not augmented, and their labels
        self.probe_data, self.probe_labels = probe_data, probe_labels
        # TrainConfig.validate allows the probe only for a linear head on pretrained weights; a run interrupted in
        # warm-up epochs resumes those instead
        self.probes = config.linear_probe == "on" and not (resume and resume.phase == "warm-up")
        self.probe_loss = None  # the probe's validation loss, where fine-tuning starts from
        self.warmup_epochs = 0 if self.probes else config.warmup_epochs
        self.devices = devices  # where the optimiser and metrics are made, and how the epochs run
        self.distributed = None  # with several machines: the training and validation data as the replicas get it
        self.scope = devices.scope
        self.pretrained, self.resume, self.log, self.steps = pretrained, resume, log, steps
        self.curve = LossCurve(output, records=resume.records if resume else None)
        self.saved_config = checkpoint_settings(config)
        verbose = 1 if sys.stdout.isatty() else 2
        self.verbose, self.val_data = verbose, val_data
        self.validates = val_data is not None  # None: too few validation images, trained on (train/preparation.py)
        self.train_data = train_data
        self.averaging_momentum = ema_momentum(steps) if config.ema else None
        self.optimizer_text = {"adam": "Adam", "adamw": f"AdamW (weight decay {config.weight_decay:g})"}[
            config.optimizer] + (f", EMA of the weights (momentum {self.averaging_momentum:.3f}) validated and kept"
                                 if config.ema else "") + (
            "" if config.schedule == "constant" else ", cosine schedule after a linear warm-up, peak")

    def _averaging(self, phase: str) -> list:
        """With --ema, the callback that puts the average in the model at each epoch's end (first in the list)."""
        resumed_here = bool(self.resume) and self.resume.phase == phase
        return [EMAWeights(average_in_model=resumed_here)] if self.config.ema else []

    def _compile(self, learning_rate: float, epochs: int) -> None:
        c = self.config
        with self.scope():
            self.model.compile(optimizer=make_optimizer(c.optimizer, learning_rate, c.schedule, self.steps * epochs,
                                                        c.weight_decay, self.averaging_momentum), loss=self.loss)

    def _run_epochs(self, initial_epoch: int, epochs: int, callbacks: list) -> None:
        """Train from `initial_epoch` to `epochs` with Keras's `fit`, or with train/worker_loop.py where `fit`
        fails (several machines)."""
        if self.devices.own_loop:
            if self.distributed is None:  # once per run, as `fit`'s iterators continue the shuffle's orders
                self.distributed = (self.devices.distribute(self.train_data),
                                    None if self.val_data is None else self.devices.distribute(self.val_data))
            fit_on_workers(self.model, self.devices, self.distributed[0], self.steps, initial_epoch, epochs,
                           self.distributed[1], callbacks, self.verbose)
            return
        self.model.fit(self.train_data, initial_epoch=initial_epoch, epochs=epochs, callbacks=callbacks,
                       validation_data=self.val_data, steps_per_epoch=self.steps, shuffle=False,  # data shuffles
                       verbose=self.verbose)

    def _resumes(self, phase: str) -> bool:
        return bool(self.resume) and self.resume.phase == phase

    def warm_up(self, policy: str) -> None:
        c, model = self.config, self.model
        if self.probes:
            self._probe(policy)
            return
        if self.pretrained:
            set_trainable_top(model, 0, train_batchnorm=False)
            self.log(f"phase 1/2 warm-up: backbone frozen, head trains; {self.optimizer_text} lr {c.lr}, "
                     f"{c.warmup_epochs} epochs ({policy})")
        else:
            set_trainable_top(model, None, train_batchnorm=True)
            self.log(f"phase 1/2 warm-up: --weights none, so the backbone is random and freezing it would be "
                     f"useless: every layer trains from scratch, BatchNorm included; {self.optimizer_text} lr {c.lr}, "
                     f"{c.warmup_epochs} epochs ({policy})")
        self._compile(c.lr, c.warmup_epochs)
        self.curve.phase = "warm-up"
        if self.resume and not self._resumes("warm-up"):
            return  # the interrupted run had finished it
        first_epoch = 0
        if self._resumes("warm-up"):
            with self.scope():
                self.resume.load_model_state(model)
            first_epoch = self.resume.epoch
        self._run_epochs(first_epoch, c.warmup_epochs,
                         [*self._averaging("warm-up"), self.curve,
                          EpochCheckpoint(self.output, self.saved_config, self.record, self.curve), TerminateOnNaN()])
        _stop_if_diverged(self.curve.records, c.lr)

    def _probe(self, policy: str) -> None:
        model = self.model
        set_trainable_top(model, 0, train_batchnorm=False)
        if self.resume:
            return  # the interrupted run had fitted it: its checkpoint holds the head
        self.log(f"phase 1/2 linear probe: the head's logits fitted to convergence on the frozen backbone's features "
                 f"of the training images, not augmented ({policy})")
        started = time.perf_counter()
        fit = run_probe(model, self.loss, self.probe_data, self.probe_labels, self.config.seed, self.log)
        record = {"epoch": 0, "phase": "linear probe", "loss": fit.training_loss}
        if self.validates:
            self._compile(self.config.lr, 1)
            self.probe_loss = float(model.evaluate(self.val_data, verbose=0))
            self.log(f"  validation loss {self.probe_loss:.4f}: fine-tuning keeps the probe unless it does better")
            record["val_loss"] = self.probe_loss
        self.curve.records.append({**record, "seconds": round(time.perf_counter() - started, 2)})
        self.curve.save()

    def fine_tune(self) -> None:
        c, model = self.config, self.model
        if self.pretrained:
            unfreeze = top_layers(model, c.unfreeze if c.unfreeze is not None else get_backbone(c.backbone).unfreeze)
            trainable = set_trainable_top(model, unfreeze, train_batchnorm=False)
            self.log(f"phase 2/2 fine-tune: top {unfreeze} backbone layers unfrozen ({trainable} trainable, "
                     f"BatchNorm frozen, backbone in inference mode)")
        else:
            set_trainable_top(model, None, train_batchnorm=True)
            self.log("phase 2/2 fine-tune: every layer keeps training")
        self.log(f"  {self.optimizer_text} lr {c.finetune_lr}, " + (
            f"up to {c.finetune_epochs} epochs, early stopping on validation loss (patience {c.patience}, best "
            "weights restored)" if self.validates else
            f"{c.finetune_epochs} epochs, the last kept (no validation images to stop on)"))
        self._compile(c.finetune_lr, c.finetune_epochs)
        self.curve.phase = "fine-tune"
        first_epoch, stopping_state, best_weights = self.warmup_epochs, None, None
        if self.probe_loss is not None:
            stopping_state = {"best": self.probe_loss, "wait": 0, "best_epoch": 0}
            best_weights = model.get_weights()
        if self._resumes("fine-tune"):
            with self.scope():
                self.resume.load_model_state(model)
            first_epoch, stopping_state = self.resume.epoch, self.resume.early_stopping
            best_weights = self.resume.best_weights(model)
        stop = None
        if self.validates:
            stop = ResumableEarlyStopping(monitor="val_loss", patience=c.patience, restore_best_weights=True,
                                          resume_from=stopping_state, resume_weights=best_weights)
            if stop.patience_used_up():
                model.set_weights(best_weights)  # the run was stopped early just before it was killed
                return
        self._run_epochs(first_epoch, self.warmup_epochs + c.finetune_epochs,
                         [*self._averaging("fine-tune"), self.curve, *([stop] if stop else []),
                          EpochCheckpoint(self.output, self.saved_config, self.record, self.curve, stop),
                          TerminateOnNaN()])
        _stop_if_diverged(self.curve.records, c.finetune_lr)
