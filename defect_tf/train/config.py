"""Every training setting in one dataclass, with its defaults (the command line's) and its checks."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from defect_tf.data.augmentation import PRESETS, ROTATIONS
from defect_tf.data.cache import CACHE_CHOICES
from defect_tf.data.sampling import SAMPLERS
from defect_tf.data.splits import SMALL_VALIDATION, SPLIT_FRACTIONS
from defect_tf.errors import DefectTFError
from defect_tf.io.output_folder import DEFAULT_OUTPUT
from defect_tf.io.untrusted import UnreadableFileError, check_file
from defect_tf.limits import MAX_MODEL_FILE_BYTES, MAX_TEXT_FILE_BYTES
from defect_tf.models.heads import ATTENTION, DEFAULT_ATTENTION, DEFAULT_HEAD, DEFAULT_POOLING, DROPOUT, HEADS, POOLING
from defect_tf.models.registry import BACKBONES
from defect_tf.tasks import TASKS, get_task
from defect_tf.train.dtype_policy import POLICIES
from defect_tf.train.head_fit import PROBE_CHOICES
from defect_tf.train.optimizers import OPTIMIZERS, SCHEDULES
from defect_tf.train.strategy import STRATEGIES

ON_BAD_IMAGE = ("error", "skip")


@dataclass
class TrainConfig:
    """Every training setting; the defaults are the command line's defaults."""

    data: str
    labels: str | None = None  # None: one sub-folder of `data` per class (data/sources.py)
    output: str = DEFAULT_OUTPUT
    task: str | None = None  # None: multiclass for one class per image (class folders, class CSV), else multilabel
    positive: str | None = None  # binary from two classes: the defect class (None: the class names tell)
    backbone: str = "efficientnet_b0"
    weights: str = "imagenet"
    image_size: int = 224
    batch_size: int = 32
    linear_probe: str = "off"  # on: phase 1 fits the head on frozen features (train/head_fit.py); docs/findings.md
    warmup_epochs: int = 5  # phase 1 without a linear probe
    finetune_epochs: int = 20
    unfreeze: int | None = None  # None: the backbone's own default (its registry entry)
    lr: float = 1e-3
    finetune_lr: float = 1e-4
    patience: int = 5
    optimizer: str = "adam"
    schedule: str = "constant"  # or "cosine": linear warm-up, then cosine decay, in each phase
    weight_decay: float = 0.004  # AdamW only (Keras's default)
    ema: bool = False  # validate, stop early on and save the moving average of the weights (optimizers.ema_momentum)
    label_smoothing: float = 0.0  # multiclass: this share of each target spread over every class
    threshold: float | None = None  # multilabel / binary: one fixed cut instead of the calibrated ones
    alpha: float | None = None  # multilabel / binary focal alpha: positives weigh alpha, negatives 1 - alpha
    gamma: float = 0.0  # masked cross-entropy: ahead of or level with focal gamma 2 in every ablation (docs/benchmarks.md)
    class_weights: bool = True
    rotation: str = "free"  # or "quarter": see augmentation.build_augmentation
    cutout: bool = True
    augment: str = "standard"  # or "heavy": see augmentation.build_augmentation
    mixup: float = 0.0  # MixUp's Beta alpha (augmentation.MIXUP_ALPHA is the usual); 0: off
    sampler: str = "shuffle"  # or "balanced": each class drawn equally often, instead of class weights (sampling.py)
    dropout: float = DROPOUT
    pooling: str = DEFAULT_POOLING
    head: str = DEFAULT_HEAD
    attention: str = DEFAULT_ATTENTION
    precision: str = "auto"
    seed: int = 0
    split: tuple[float, float, float] = SPLIT_FRACTIONS
    split_file: str | None = None  # `image split` rows to use instead of a new seeded split
    small_validation: str = "auto"  # pretrained, under MIN_VALIDATION_IMAGES: see trains_on_small_validation
    fill_na: int = 0  # multilabel: rounds of pseudo-labels for NA cells, each trained again (train/label_filling.py)
    na_labels: str | None = None  # a later filling round's: the label file whose NA cells are filled (the user's)
    on_bad_image: str = "error"  # or "skip": train without missing / unreadable images
    cache: str = "auto"  # where decoded images wait between epochs: auto, memory or disk (data/cache.py)
    strategy: str = "auto"  # the devices a run trains on: auto, one, mirrored or multiworker (train/strategy.py)

    def trains_on_small_validation(self, pretrained: bool) -> bool:
        """Whether fewer than MIN_VALIDATION_IMAGES validation images train too (no early stopping, thresholds 0.5):
        only on pretrained features; by default (auto) with the linear probe, which they measured better with on
        NEU at 5 and 10 images per class, and not the warm-up epochs (docs/findings.md)."""
        return pretrained and (self.small_validation == "train" or
                               (self.small_validation == "auto" and self.linear_probe == "on"))

    def validate(self) -> None:
        """Stop with one line naming the flag if a setting is out of range or a path is wrong (before any work)."""
        problems = [message for field, (low, high) in NUMBER_RANGES.items() if getattr(self, field) is not None
                    and (message := _out_of_range(field, getattr(self, field), low, high))]
        if not problems and self.warmup_epochs + self.finetune_epochs == 0 and self.linear_probe == "off":
            problems.append("--warmup-epochs and --finetune-epochs are both 0: nothing would be trained (with "
                            "--linear-probe on, only the head)")
        if self.linear_probe == "on" and (self.weights.lower() == "none" or self.head != "linear"
                                          or self.attention != "none"):
            problems.append("--linear-probe on fits a linear head (--head linear --attention none) on pretrained "
                            f"features, and this run has --weights {self.weights} --head {self.head} --attention "
                            f"{self.attention}")
        for field, allowed in (("task", [None, *TASKS]), ("backbone", sorted(BACKBONES)), ("rotation", ROTATIONS),
                               ("augment", PRESETS),
                               ("pooling", sorted(POOLING)), ("head", HEADS), ("attention", ATTENTION),
                               ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("sampler", SAMPLERS),
                               ("precision", POLICIES), ("on_bad_image", ON_BAD_IMAGE), ("cache", CACHE_CHOICES),
                               ("strategy", STRATEGIES), ("linear_probe", PROBE_CHOICES),
                               ("small_validation", SMALL_VALIDATION)):
            if getattr(self, field) not in allowed:
                problems.append(f"{_flag(field)} must be one of {', '.join(filter(None, allowed))}, "
                                f"not {getattr(self, field)!r}")
        if self.task in TASKS:
            problems += self.task_problems(self.task)
        fractions = np.asarray(self.split, dtype=float)
        if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0) \
                or fractions[0] <= 0 or fractions[1] <= 0:
            problems.append(f"split fractions must be three numbers (train > 0, val > 0, test >= 0) summing to 1, "
                            f"not {self.split}")
        for field in ("data", "labels", "output", "positive"):
            if getattr(self, field) is not None and not str(getattr(self, field)).strip():
                problems.append(f"{_flag(field)} is an empty path")
        if not Path(self.data).is_dir():
            problems.append(f"--data {self.data}: " + ("folder not found" if not Path(self.data).exists()
                                                        else "not a folder"))
        if (self.weights.lower() == "imagenet" and self.backbone in BACKBONES
                and BACKBONES[self.backbone].imagenet is None):
            problems.append(f"--backbone {self.backbone} has no ImageNet weights: add --weights none to train it "
                            "from scratch")
        files = [("labels", "label file", MAX_TEXT_FILE_BYTES), ("split_file", "split file", MAX_TEXT_FILE_BYTES)]
        if self.weights.lower() not in ("imagenet", "none"):
            files.append(("weights", "weights file", MAX_MODEL_FILE_BYTES))
        for field, what, max_bytes in files:
            if getattr(self, field) is not None and str(getattr(self, field)).strip():
                try:
                    check_file(getattr(self, field), max_bytes, what)
                except UnreadableFileError as error:
                    hint = ("; use imagenet, none, or a path to a weights file" if field == "weights"
                            and error.reason == "file not found" else "")
                    problems.append(f"{_flag(field)} {error}{hint}")
        if Path(self.output).exists() and not Path(self.output).is_dir():
            problems.append(f"--output {self.output} is a file, not a folder")
        if problems:
            raise DefectTFError("; ".join(problems))


    def task_problems(self, task: str) -> list[str]:
        """The settings `task` cannot use; checked again once the data has decided a task left open."""
        sigmoid = get_task(task).uses_thresholds  # multilabel, binary: a sigmoid per attribute
        problems = []
        if self.alpha is not None and not sigmoid:
            problems.append(f"--alpha is for --task multilabel and binary, and this run is {task} (class weights "
                            "balance its classes)")
        if self.threshold is not None and not sigmoid:
            problems.append(f"--threshold is for --task multilabel and binary, and this run is {task} (the most "
                            "probable class decides)")
        if self.label_smoothing and sigmoid:
            problems.append(f"--label-smoothing is for --task multiclass, and this run is {task}")
        if self.fill_na and task != "multilabel":
            problems.append(f"--fill-na fills in NA labels of --task multilabel, and this run is {task}")
        return problems


# Inclusive bounds of each numeric setting; floats must also be finite. Dropout stops short of 1 (1.0 trains nothing).
NUMBER_RANGES = {
    "image_size": (32, 1024), "batch_size": (1, 1024), "warmup_epochs": (0, 10_000), "finetune_epochs": (0, 10_000),
    "unfreeze": (0, 100_000), "lr": (1e-8, 1.0), "finetune_lr": (1e-8, 1.0), "patience": (0, 10_000),
    "weight_decay": (0.0, 1.0), "gamma": (0.0, 10.0), "alpha": (0.0, 1.0), "label_smoothing": (0.0, 0.5), "mixup": (0.0, 10.0),
    "threshold": (0.0, 1.0), "dropout": (0.0, 0.99), "seed": (0, 2**32 - 1), "fill_na": (0, 10),
}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _out_of_range(field: str, value, low, high) -> str | None:
    whole = isinstance(low, int)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not float(value).is_integer()):
        return f"{_flag(field)} must be a {'whole ' if whole else ''}number, not {value!r}"
    if not math.isfinite(value) or not low <= value <= high:
        return f"{_flag(field)} must be from {low:g} to {high:g}, not {value:g}"
    return None


def checkpoint_settings(config: TrainConfig) -> dict:
    """The settings a checkpoint saves (JSON; absolute data and label paths), so `--resume` works from anywhere."""
    return {**asdict(config), "data": str(Path(config.data).resolve()), "split": list(config.split),
            **{field: str(Path(getattr(config, field)).resolve()) if getattr(config, field) else None
               for field in ("labels", "na_labels")}}


def config_from_settings(settings: dict) -> TrainConfig:
    """The TrainConfig that a checkpoint's or a bundle's saved settings (JSON: split as a list) describe."""
    return TrainConfig(**{**settings, "split": tuple(settings["split"])})  # older settings lack later fields: defaults
