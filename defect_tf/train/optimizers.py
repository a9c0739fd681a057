"""The optimiser of one training phase: Adam (the default) or AdamW, at a constant learning rate or on a
cosine decay after a linear warm-up. The schedule counts the optimiser's own steps, which a checkpoint
saves, so a resumed phase continues on the same curve."""

from __future__ import annotations

import keras

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")
WARMUP_SHARE = 0.1  # of a phase's steps, for the cosine schedule's linear warm-up


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


def make_optimizer(name: str, peak: float, schedule: str, steps: int, weight_decay: float) -> keras.optimizers.Optimizer:
    """The optimiser for a phase of `steps` training steps."""
    rate = learning_rate(peak, schedule, steps)
    if name == "adam":
        return keras.optimizers.Adam(rate)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
