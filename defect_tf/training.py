"""Two-phase training: warm-up, then fine-tuning with early stopping, then threshold calibration.

With pretrained weights this is Keras's transfer-learning recipe: phase 1 trains only the head on a
frozen backbone; phase 2 unfreezes the backbone's top layers (BatchNormalization stays frozen) at a
lower learning rate. With `--weights none` a frozen backbone would be random features, so both
phases train every layer, BatchNormalization included: phase 1 at `lr`, phase 2 at `finetune_lr`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
from keras.callbacks import TerminateOnNaN

from defect_tf.augmentation import build_augmentation
from defect_tf.bundle import load_bundle, save_bundle
from defect_tf.calibration import FALLBACK_THRESHOLD, calibrate_thresholds
from defect_tf.callbacks import LossCurve, ResumableEarlyStopping
from defect_tf.checkpoints import CHECKPOINT_DIR, Checkpoint, EpochCheckpoint, read_checkpoint, remove_checkpoint
from defect_tf.data import make_dataset, steps_per_epoch
from defect_tf.errors import DefectTFError, ImageError, LabelError
from defect_tf.evaluation import evaluate_bundle, format_report
from defect_tf.labels import LabelTable, header_fingerprint, label_counts, parse_labels, summarize
from defect_tf.losses import MaskedFocalLoss, attribute_class_weights
from defect_tf.models import build_classifier, resolve_weights, set_trainable_top
from defect_tf.precision import set_precision
from defect_tf.prediction import predict_probabilities
from defect_tf.splits import SPLITS, split_from_file, stratified_split, write_split
from defect_tf.validation import check_data


@dataclass
class TrainConfig:
    """Every training setting; the defaults are the command line's defaults."""

    data: str
    labels: str
    output: str = "outputs"
    backbone: str = "efficientnet_b0"
    weights: str = "imagenet"
    image_size: int = 224
    batch_size: int = 32
    warmup_epochs: int = 5
    finetune_epochs: int = 20
    unfreeze: int = 27
    lr: float = 1e-3
    finetune_lr: float = 1e-4
    patience: int = 5
    gamma: float = 0.0  # masked cross-entropy: ahead of or level with focal gamma 2 in every ablation (docs/benchmarks.md)
    class_weights: bool = True
    rotation: str = "free"  # or "quarter": see augmentation.build_augmentation
    cutout: bool = True
    dropout: float = 0.3
    pooling: str = "avg"
    precision: str = "auto"
    seed: int = 0
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_file: str | None = None  # `image split` rows to use instead of a new seeded split
    on_bad_image: str = "error"  # or "skip": train without missing / unreadable images


def _class_weight_table(attributes, positive, negative) -> str:
    width = max(len("attribute"), *(len(name) for name in attributes))
    rows = [f"  {'attribute':<{width}} {'positive':>9} {'negative':>9}"]
    rows += [f"  {name:<{width}} {p:>9.3f} {n:>9.3f}" for name, p, n in zip(attributes, positive, negative)]
    return "\n".join(rows)


def _stop_if_diverged(records: list[dict], learning_rate: float) -> None:
    if records and not np.isfinite(records[-1].get("loss", np.nan)):
        raise DefectTFError(f"training diverged (the loss became NaN or infinite at epoch {records[-1]['epoch']}); "
                            f"try a lower learning rate than {learning_rate}")


def _drop_bad_images(config: TrainConfig, table: LabelTable, output: Path, log) -> LabelTable:
    """Check every image before training; stop on bad ones (`error`), or leave them out (`skip`)."""
    report = check_data(config.data, table)
    if report.describe_warnings():
        log(report.describe_warnings())
    if not report.bad_images:
        return table
    if config.on_bad_image == "error":
        raise ImageError(f"{report.describe_bad_images()}\nFix or remove them, or train without them: "
                         "--on-bad-image skip")
    skipped = output / "skipped_images.txt"
    skipped.write_text("".join(f"{path}\t{reason}\n" for path, reason in report.bad_images.items()),
                       encoding="utf-8")
    log(f"{report.describe_bad_images()}\n--on-bad-image skip: training without them (list in {skipped})")
    bad = set(report.bad_images)
    return table.subset([i for i, image in enumerate(table.images) if str(Path(config.data) / image) not in bad])


def train(config: TrainConfig, log=print, resume: Checkpoint | None = None) -> dict:
    """Train, calibrate, save the bundle and score the test split; returns the test report.

    With `resume` (see `resume_training`), training continues from that checkpoint's epoch.
    """
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config.precision)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    if not resume and (output / CHECKPOINT_DIR).exists():
        log(f"note: {output} holds an interrupted run's checkpoint; this new run replaces it "
            f"(to continue that run instead: train.py --resume --output {output})")
        remove_checkpoint(output)

    table = parse_labels(config.labels)
    if resume and resume.attributes and resume.attributes != table.attributes:
        raise LabelError(f"{config.labels}: its attributes are now {table.attributes}, but the interrupted run "
                         f"was training {resume.attributes}; restore that label header to resume, or start a "
                         "new run without --resume")
    log(summarize(table))
    weights_file = resolve_weights(config.backbone, config.weights)  # before the image scan: fail fast offline
    pretrained = weights_file is not None
    table = _drop_bad_images(config, table, output, log)
    paths = np.asarray([str(Path(config.data) / image) for image in table.images])

    if config.split_file:
        split = split_from_file(config.split_file, table.images, table.values, config.split, config.seed)
    else:
        split = stratified_split(table.values, config.split, config.seed)
    write_split(output / "split.txt", table.images, split)
    rows = {name: np.flatnonzero(split == name) for name in SPLITS}
    log("split: " + ", ".join(f"{name} {len(rows[name])}" for name in SPLITS)
        + (f" (from {config.split_file}" if config.split_file else f" (seed {config.seed}")
        + f", saved to {output / 'split.txt'})")
    if len(rows["train"]) == 0 or len(rows["val"]) == 0:
        raise DefectTFError(f"{len(table.images)} images are too few to hold out a validation split; "
                            "label more images (a few dozen at the very least)")
    train_labels, val_labels = table.values[rows["train"]], table.values[rows["val"]]
    for name, count in zip(table.attributes, label_counts(train_labels)["positive"]):
        if count == 0:
            log(f"warning: attribute {name!r} has no positive label in the training split: it cannot be learned")

    augment = build_augmentation(config.rotation, config.cutout, seed=config.seed)
    train_data = make_dataset(list(paths[rows["train"]]), train_labels, config.image_size, config.batch_size,
                              training=True, augment=augment, seed=config.seed)
    val_data = make_dataset(list(paths[rows["val"]]), val_labels, config.image_size, config.batch_size)

    positive_weights = negative_weights = None
    if config.class_weights:
        positive_weights, negative_weights = attribute_class_weights(train_labels)
        log("class weights from the training split's known labels (rare class up, clipped to [0.1, 10]):\n"
            + _class_weight_table(table.attributes, positive_weights, negative_weights))
    else:
        log("class weights: off")
    loss = MaskedFocalLoss(config.gamma, positive_weights, negative_weights)

    model = build_classifier(config.backbone, len(table.attributes), config.image_size, weights_file, config.dropout,
                             config.pooling)
    curve = LossCurve(output, records=resume.records if resume else None)
    saved_config = checkpoint_settings(config)
    steps = steps_per_epoch(len(rows["train"]), config.batch_size)
    verbose = 1 if sys.stdout.isatty() else 2
    fit = dict(validation_data=val_data, steps_per_epoch=steps, shuffle=False, verbose=verbose)  # data shuffles itself
    if resume:
        log(f"resuming after epoch {resume.epoch} ({resume.phase}) from {resume.directory}")

    if pretrained:
        set_trainable_top(model, 0, train_batchnorm=False)
        log(f"phase 1/2 warm-up: backbone frozen, head trains; Adam lr {config.lr}, {config.warmup_epochs} epochs "
            f"({policy})")
    else:
        set_trainable_top(model, None, train_batchnorm=True)
        log(f"phase 1/2 warm-up: --weights none, so the backbone is random and freezing it would be useless: "
            f"every layer trains from scratch, BatchNorm included; Adam lr {config.lr}, {config.warmup_epochs} "
            f"epochs ({policy})")
    model.compile(optimizer=keras.optimizers.Adam(config.lr), loss=loss)
    curve.phase = "warm-up"
    first_epoch = 0
    if resume and resume.phase == "warm-up":
        resume.load_model_state(model)
        first_epoch = resume.epoch
    if not resume or resume.phase == "warm-up":
        model.fit(train_data, initial_epoch=first_epoch, epochs=config.warmup_epochs,
                  callbacks=[curve, EpochCheckpoint(output, saved_config, table.attributes, curve), TerminateOnNaN()],
                  **fit)
        _stop_if_diverged(curve.records, config.lr)

    if pretrained:
        trainable = set_trainable_top(model, config.unfreeze, train_batchnorm=False)
        log(f"phase 2/2 fine-tune: top {config.unfreeze} backbone layers unfrozen ({trainable} trainable, "
            f"BatchNorm frozen)")
    else:
        set_trainable_top(model, None, train_batchnorm=True)
        log("phase 2/2 fine-tune: every layer keeps training")
    log(f"  Adam lr {config.finetune_lr}, up to {config.finetune_epochs} epochs, early stopping on validation loss "
        f"(patience {config.patience}, best weights restored)")
    model.compile(optimizer=keras.optimizers.Adam(config.finetune_lr), loss=loss)
    curve.phase = "fine-tune"
    first_epoch, stopping_state, best_weights = config.warmup_epochs, None, None
    if resume and resume.phase == "fine-tune":
        resume.load_model_state(model)
        first_epoch, stopping_state, best_weights = resume.epoch, resume.early_stopping, resume.best_weights()
    stop = ResumableEarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True,
                                  resume_from=stopping_state, resume_weights=best_weights)
    if stop.patience_used_up():
        model.set_weights(best_weights)  # the run was stopped early just before it was killed
    else:
        model.fit(train_data, initial_epoch=first_epoch, epochs=config.warmup_epochs + config.finetune_epochs,
                  callbacks=[curve, stop, EpochCheckpoint(output, saved_config, table.attributes, curve, stop),
                             TerminateOnNaN()], **fit)
        _stop_if_diverged(curve.records, config.finetune_lr)

    thresholds = calibrate_thresholds(val_labels, predict_probabilities(model, val_data))
    log("thresholds calibrated for best F1 on the validation split (fallback "
        f"{FALLBACK_THRESHOLD} where it has no positive or no negative): "
        + ", ".join(f"{name} {t:.3f}" for name, t in zip(table.attributes, thresholds)))

    metadata = {
        "attributes": table.attributes,
        "label_header_fingerprint": header_fingerprint(table.attributes),
        "image_size": config.image_size,
        "thresholds": [float(t) for t in thresholds],
        "backbone": config.backbone,
        "pretrained": pretrained,
        "precision": policy,
        "settings": {**asdict(config), "split": list(config.split)},
        "data_dir": str(Path(config.data).resolve()),
        "labels_file": str(Path(config.labels).resolve()),
        "split": {name: [table.images[i] for i in rows[name]] for name in SPLITS},
        "epochs_trained": len(curve.records),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    bundle = load_bundle(save_bundle(output, model, metadata))
    remove_checkpoint(output)
    log(f"saved model bundle to {bundle.path} ({time.time() - started:.0f} s so far)")

    if len(rows["test"]) == 0:
        log("no test split (too few images): skipping the test evaluation")
        return {}
    report = evaluate_bundle(bundle, config.data, table.subset(rows["test"]), output, config.batch_size)
    log(f"test split ({len(rows['test'])} images):\n{format_report(report)}")
    log(f"test macro F1 (calibrated thresholds): {report['calibrated']['macro']['f1']:.3f}; "
        f"metrics in {output / 'metrics.json'}, curves in {output / 'loss_curve.png'} and {output / 'pr_curve.png'}; "
        f"total {time.time() - started:.0f} s")
    return report


def checkpoint_settings(config: TrainConfig) -> dict:
    """The settings a checkpoint saves (JSON; absolute data and label paths), so `--resume` works from anywhere."""
    return {**asdict(config), "data": str(Path(config.data).resolve()), "labels": str(Path(config.labels).resolve()),
            "split": list(config.split)}


def config_from_settings(settings: dict) -> TrainConfig:
    """The TrainConfig that a checkpoint's or a bundle's saved settings (JSON: split as a list) describe."""
    return TrainConfig(**{**settings, "split": tuple(settings["split"])})


def resume_training(output_dir: str | Path, log=print) -> dict:
    """Continue the interrupted run in `output_dir` with its own settings, from its last completed epoch."""
    checkpoint = read_checkpoint(output_dir)
    return train(config_from_settings(checkpoint.config), log, resume=checkpoint)
