"""The optimiser of one training phase: Adam (the default) or AdamW, at a constant learning rate or on a
cosine decay after a linear warm-up, optionally keeping an exponential moving average (EMA) of the weights.
The schedule counts the optimiser's own steps, which a checkpoint saves, so a resumed phase continues on
the same curve."""

from __future__ import annotations

import keras

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")
WARMUP_SHARE = 0.1  # of a phase's steps, for the cosine schedule's linear warm-up
EMA_MAX_MOMENTUM = 0.999  # the moving average spans about one epoch's steps, but never more than 1,000


def learning_rate(peak: float, schedule: str, steps: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`peak` throughout (constant), or from 0 up to `peak` over the first WARMUP_SHARE of `steps`, then a cosine
    down to 0 at the last step (cosine)."""
    if schedule == "constant":
        return peak
    if schedule != "cosine":
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    warmup = int(WARMUP_SHARE * steps)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=max(1, steps - warmup), warmup_target=peak,
                                                  warmup_steps=warmup)


def ema_momentum(steps_per_epoch: int) -> float:
    """The weights' moving-average momentum: 1 - 1 / steps per epoch, so the average spans about the last epoch.

    A fixed 0.99 (Keras's default) spans ~100 steps: on a small data set that is many epochs, and the average
    still remembers the weights training started from when early stopping compares it (docs/findings.md)."""
    return min(EMA_MAX_MOMENTUM, 1.0 - 1.0 / max(1, steps_per_epoch))


def make_optimizer(name: str, peak: float, schedule: str, steps: int, weight_decay: float,
                   ema: float | None = None) -> keras.optimizers.Optimizer:
    """The optimiser for a phase of `steps` training steps; with `ema` (a momentum), it also keeps the weights'
    moving average, which `callbacks.EMAWeights` puts in the model for validation, early stopping and saving."""
    rate = learning_rate(peak, schedule, steps)
    average = dict(use_ema=ema is not None, ema_momentum=0.99 if ema is None else ema)
    if name == "adam":
        return keras.optimizers.Adam(rate, **average)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=weight_decay, **average)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
