"""Two-phase training: warm-up, then fine-tuning with early stopping, then threshold calibration.

With pretrained weights this is Keras's transfer-learning recipe: phase 1 trains only the head on a
frozen backbone; phase 2 unfreezes the backbone's top layers (BatchNormalization stays frozen) at a
lower learning rate. With `--weights none` a frozen backbone would be random features, so both
phases train every layer, BatchNormalization included: phase 1 at `lr`, phase 2 at `finetune_lr`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
from keras.callbacks import TerminateOnNaN

from defect_tf.bundle.layout import BUNDLE_DIR
from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import load_bundle, save_bundle
from defect_tf.data.augmentation import build_training_transforms
from defect_tf.data.checks import check_data
from defect_tf.data.labels import LabelTable, header_fingerprint, known_mask, label_counts
from defect_tf.data.pipeline import make_dataset, steps_per_epoch
from defect_tf.data.sampling import balance_groups, describe_groups
from defect_tf.data.sources import load_source
from defect_tf.data.splits import SPLITS, split_from_file, split_from_parts, stratified_split, write_split
from defect_tf.errors import DefectTFError, ImageError, LabelError
from defect_tf.evaluate.evaluation import METRICS_FILE, evaluate_bundle
from defect_tf.inference.predictor import predict_probabilities
from defect_tf.io import output_folder
from defect_tf.io.files import write_text
from defect_tf.models.classifier import build_classifier, resolve_weights, set_trainable_top, top_layers
from defect_tf.models.registry import get_backbone
from defect_tf.tasks import TASKS, task_labels
from defect_tf.train.callbacks import HISTORY_FILE, LOSS_CURVE_FILE, EMAWeights, LossCurve, ResumableEarlyStopping
from defect_tf.train.checkpoints import CHECKPOINT_DIR, Checkpoint, EpochCheckpoint, read_checkpoint, remove_checkpoint
from defect_tf.train.config import TrainConfig, checkpoint_settings, config_from_settings
from defect_tf.train.dtype_policy import set_precision
from defect_tf.train.losses import LossSettings
from defect_tf.train.optimizers import ema_momentum, make_optimizer
from defect_tf.train.progress import RunProgress, interrupts_deferred

SPLIT_FILE = "split.txt"
SKIPPED_FILE = "skipped_images.txt"
# Everything a training run writes into its output folder (claimed there before the run writes anything).
OUTPUTS = (BUNDLE_DIR, CHECKPOINT_DIR, SPLIT_FILE, HISTORY_FILE, LOSS_CURVE_FILE, METRICS_FILE, SKIPPED_FILE,
           *dict.fromkeys(name for task in TASKS.values() for name in task.report_files))
MEMORY_SHARE_FOR_IMAGES = 0.5  # decoded training images may take at most this share of the machine's memory


def _stop_if_diverged(records: list[dict], learning_rate: float) -> None:
    if records and not np.isfinite(records[-1].get("loss", np.nan)):
        raise DefectTFError(f"training diverged (the loss became NaN or infinite at epoch {records[-1]['epoch']}); "
                            f"try a lower learning rate than {learning_rate}")


def _drop_bad_images(config: TrainConfig, table: LabelTable, output: Path, log,
                     resuming: bool) -> tuple[LabelTable, dict[str, str]]:
    """Check every image before training; stop on bad ones (`error`), or leave them out (`skip`). Returns the
    images kept and every readable image's content digest (path -> digest).

    A resumed run never leaves out images: its split was fixed when it started.
    """
    report = check_data(config.data, table)
    if report.describe_warnings():
        log(report.describe_warnings())
    if not report.bad_images:
        return table, report.digests
    if resuming:
        raise ImageError(f"{report.describe_bad_images()}\nThe interrupted run trained on these; restore them to "
                         "resume, or start a new run without --resume")
    if config.on_bad_image == "error":
        raise ImageError(f"{report.describe_bad_images()}\nFix or remove them, or train without them: "
                         "--on-bad-image skip")
    skipped = output / SKIPPED_FILE
    write_text(skipped, "".join(f"{path}\t{reason}\n" for path, reason in report.bad_images.items()))
    log(f"{report.describe_bad_images()}\n--on-bad-image skip: training without them (list in {skipped})")
    bad = set(report.bad_images)
    kept = [i for i, image in enumerate(table.images) if str(Path(config.data) / image) not in bad]
    return table.subset(kept), report.digests


def _check_memory(n_images: int, image_size: int) -> None:
    """Decoded images are cached in memory as uint8: refuse a size that can't fit, before decoding any."""
    needed = n_images * image_size * image_size * 3
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > MEMORY_SHARE_FOR_IMAGES * available:
        raise DefectTFError(f"--image-size {image_size}: {n_images} decoded images would need "
                            f"{needed / 2**30:.1f} GiB of memory, more than half of this machine's "
                            f"{available / 2**30:.1f} GiB; use a smaller --image-size")


def _resumed_rows(resume: Checkpoint, table: LabelTable, labels_file: str, log) -> tuple[LabelTable, np.ndarray]:
    """The interrupted run's own images and split; a label file whose rows changed since is an error naming them."""
    if resume.attributes and resume.attributes != table.attributes:
        raise LabelError(f"{labels_file}: its attributes are now {table.attributes}, but the interrupted run "
                         f"was training {resume.attributes}; restore that label header to resume, or start a "
                         "new run without --resume")
    if resume.split is None:
        raise DefectTFError(f"the checkpoint in {resume.directory} predates saved splits and cannot be resumed "
                            "safely; start a new run without --resume")
    part = {image: name for name in SPLITS for image in resume.split[name]}
    current = {image: row for image, row in zip(table.images, table.values.tolist())}
    if resume.labels is not None:
        removed = [image for image in resume.labels if image not in current]
        changed = [image for image, row in resume.labels.items() if image in current and current[image] != row]
        if removed or changed:
            def some(images: list[str]) -> str:
                return ", ".join(images[:5]) + (" ..." if len(images) > 5 else "")
            parts = ([f"{len(changed)} row(s) changed values ({some(changed)})"] if changed else []) + \
                    ([f"{len(removed)} row(s) removed ({some(removed)})"] if removed else [])
            raise LabelError(f"{labels_file} changed since the interrupted run started: {'; '.join(parts)}. "
                             "Resuming keeps the run's own split and labels, so restore the file, or start a new "
                             "run without --resume")
    missing = [image for image in part if image not in current]
    if missing:
        raise LabelError(f"{labels_file}: {len(missing)} image(s) of the interrupted run are no longer listed, "
                         f"e.g. {', '.join(missing[:5])}; restore them, or start a new run without --resume")
    added = [image for image in current if image not in part and image not in (resume.labels or {})]
    if added:
        log(f"note: {len(added)} row(s) added to {labels_file} since the interrupted run started are not used by it "
            f"(e.g. {', '.join(added[:3])}); a new run would use them")
    rows = [i for i, image in enumerate(table.images) if image in part]
    table = table.subset(rows)
    return table, np.asarray([part[image] for image in table.images])


def train(config: TrainConfig, log=print, resume: Checkpoint | None = None,
          progress: RunProgress | None = None) -> dict:
    """Train, calibrate, save the bundle and score the test split; returns the test report.

    With `resume` (see `resume_training`), training continues from that checkpoint's epoch, on the
    split and labels it started with. `progress` follows the run's stage (for what an interruption says).
    """
    progress = progress or RunProgress()
    config.validate()
    output_folder.check_no_overlap(config.output, config.data)
    with output_folder.locked(config.output):
        report = _train(config, log, resume, progress)
    progress.stage = "done"
    return report


def _train(config: TrainConfig, log, resume: Checkpoint | None, progress: RunProgress) -> dict:
    started = time.time()
    output = output_folder.claim(config.output, OUTPUTS)
    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config.precision)
    if not resume and (output / CHECKPOINT_DIR).exists():
        log(f"note: {output} holds an interrupted run's checkpoint; this new run replaces it "
            f"(to continue that run instead: train.py --resume --output {output})")
        remove_checkpoint(output)

    source = load_source(config.data, config.labels)
    task, source, label_problems = task_labels(source, config.task, config.positive)
    if label_problems:
        raise LabelError("\n".join(label_problems))
    if config.task_problems(task.name):  # the layout chose the task: the settings meet it only now
        raise DefectTFError("; ".join(config.task_problems(task.name)))
    table, labels_from = source.table, config.labels or f"the class folders of {config.data}"
    split = None
    if resume:
        table, split = _resumed_rows(resume, table, labels_from, log)
    log(f"task: {task.name}; labels from {labels_from} ({source.layout})")
    log(task.summarize(table))
    _check_memory(len(table.images), config.image_size)
    weights_file = resolve_weights(config.backbone, config.weights)  # before the image scan: fail fast offline
    pretrained = weights_file is not None
    table, digests = _drop_bad_images(config, table, output, log, resuming=resume is not None)
    paths = np.asarray([str(Path(config.data) / image) for image in table.images])

    if split is not None:
        split_source = f"the interrupted run's own split, from {resume.directory}"
    elif config.split_file:
        split = split_from_file(config.split_file, table.images, table.values, config.split, config.seed)
        split_source = f"from {config.split_file}"
    elif source.split is not None:
        split = split_from_parts(source.split, table.images, table.values, config.split, config.seed,
                                 f"the train/ val/ test/ folders of {config.data}")
        split_source = "from the train/ val/ test/ folders" + ("" if "val" in source.split.values()
                                                               else ", val carved out of train")
    else:
        split = stratified_split(table.values, config.split, config.seed)
        split_source = f"seed {config.seed}"
    write_split(output / SPLIT_FILE, table.images, split)
    rows = {name: np.flatnonzero(split == name) for name in SPLITS}
    log("split: " + ", ".join(f"{name} {len(rows[name])}" for name in SPLITS)
        + f" ({split_source}, saved to {output / SPLIT_FILE})")
    if len(rows["train"]) == 0 or len(rows["val"]) == 0:
        raise DefectTFError(f"{len(table.images)} images are too few to hold out a validation split; "
                            "label more images (a few dozen at the very least)")
    train_labels, val_labels = table.values[rows["train"]], table.values[rows["val"]]
    untrained = [name for name, known in zip(table.attributes, known_mask(train_labels).any(axis=0)) if not known]
    if untrained:
        log(f"warning: {', '.join(map(repr, untrained))} has no known label in the training split: it is not "
            "learned, and the model will never report it as detected (marked untrained in the bundle)")
    for name, count in zip(table.attributes, label_counts(train_labels)["positive"]):
        if count == 0 and name not in untrained:
            log(f"warning: attribute {name!r} has no positive label in the training split: it cannot be learned")
    run = {"attributes": table.attributes,
           "labels": {image: row for image, row in zip(table.images, table.values.tolist())},
           "split": {name: [table.images[i] for i in rows[name]] for name in SPLITS}}

    augment, mixup = build_training_transforms(config.rotation, config.cutout, config.augment, config.mixup,
                                               seed=config.seed)
    groups = balance_groups(train_labels) if config.sampler == "balanced" else None
    train_data = make_dataset(list(paths[rows["train"]]), train_labels, config.image_size, config.batch_size,
                              training=True, augment=augment, mixup=mixup, groups=groups, seed=config.seed)
    val_data = make_dataset(list(paths[rows["val"]]), val_labels, config.image_size, config.batch_size)
    if groups is not None:
        log(describe_groups(groups, table.attributes))
    if mixup:
        log(f"MixUp: each training batch blends image pairs and their labels, weight ~ Beta({config.mixup:g}, "
            f"{config.mixup:g})")

    class_weights = config.class_weights and groups is None  # the balanced sampler balances instead
    loss, weighting = task.loss(train_labels, table.attributes,
                                LossSettings(config.gamma, config.alpha, class_weights, config.label_smoothing))
    log(weighting)

    model = build_classifier(config.backbone, len(table.attributes), config.image_size, weights_file, config.dropout,
                             config.pooling, config.head, config.attention)
    curve = LossCurve(output, records=resume.records if resume else None)
    saved_config = checkpoint_settings(config)
    steps = steps_per_epoch(len(rows["train"]), config.batch_size)
    verbose = 1 if sys.stdout.isatty() else 2
    fit = dict(validation_data=val_data, steps_per_epoch=steps, shuffle=False, verbose=verbose)  # data shuffles itself
    optimizer_text = {"adam": "Adam", "adamw": f"AdamW (weight decay {config.weight_decay:g})"}[config.optimizer] + (
        f", EMA of the weights (momentum {ema_momentum(steps):.3f}) validated and kept" if config.ema else "") + (
        "" if config.schedule == "constant" else ", cosine schedule after a linear warm-up, peak")
    averaging_momentum = ema_momentum(steps) if config.ema else None

    def averaging(phase: str) -> list:
        """With --ema, the callback that puts the average in the model at each epoch's end (first in the list)."""
        return [EMAWeights(average_in_model=bool(resume) and resume.phase == phase)] if config.ema else []

    if resume:
        log(f"resuming after epoch {resume.epoch} ({resume.phase}) from {resume.directory}")

    if pretrained:
        set_trainable_top(model, 0, train_batchnorm=False)
        log(f"phase 1/2 warm-up: backbone frozen, head trains; {optimizer_text} lr {config.lr}, "
            f"{config.warmup_epochs} epochs ({policy})")
    else:
        set_trainable_top(model, None, train_batchnorm=True)
        log(f"phase 1/2 warm-up: --weights none, so the backbone is random and freezing it would be useless: "
            f"every layer trains from scratch, BatchNorm included; {optimizer_text} lr {config.lr}, "
            f"{config.warmup_epochs} epochs ({policy})")
    model.compile(optimizer=make_optimizer(config.optimizer, config.lr, config.schedule, steps * config.warmup_epochs,
                                           config.weight_decay, averaging_momentum), loss=loss)
    curve.phase = "warm-up"
    progress.stage = "training"
    first_epoch = 0
    if resume and resume.phase == "warm-up":
        resume.load_model_state(model)
        first_epoch = resume.epoch
    if not resume or resume.phase == "warm-up":
        model.fit(train_data, initial_epoch=first_epoch, epochs=config.warmup_epochs,
                  callbacks=[*averaging("warm-up"), curve, EpochCheckpoint(output, saved_config, run, curve),
                             TerminateOnNaN()],
                  **fit)
        _stop_if_diverged(curve.records, config.lr)

    if pretrained:
        unfreeze = top_layers(model, config.unfreeze if config.unfreeze is not None
                              else get_backbone(config.backbone).unfreeze)
        trainable = set_trainable_top(model, unfreeze, train_batchnorm=False)
        log(f"phase 2/2 fine-tune: top {unfreeze} backbone layers unfrozen ({trainable} trainable, "
            f"BatchNorm frozen, backbone in inference mode)")
    else:
        set_trainable_top(model, None, train_batchnorm=True)
        log("phase 2/2 fine-tune: every layer keeps training")
    log(f"  {optimizer_text} lr {config.finetune_lr}, up to {config.finetune_epochs} epochs, early stopping on "
        f"validation loss (patience {config.patience}, best weights restored)")
    model.compile(optimizer=make_optimizer(config.optimizer, config.finetune_lr, config.schedule,
                                           steps * config.finetune_epochs, config.weight_decay, averaging_momentum),
                  loss=loss)
    curve.phase = "fine-tune"
    first_epoch, stopping_state, best_weights = config.warmup_epochs, None, None
    if resume and resume.phase == "fine-tune":
        resume.load_model_state(model)
        first_epoch, stopping_state, best_weights = resume.epoch, resume.early_stopping, resume.best_weights(model)
    stop = ResumableEarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True,
                                  resume_from=stopping_state, resume_weights=best_weights)
    if stop.patience_used_up():
        model.set_weights(best_weights)  # the run was stopped early just before it was killed
    else:
        model.fit(train_data, initial_epoch=first_epoch, epochs=config.warmup_epochs + config.finetune_epochs,
                  callbacks=[*averaging("fine-tune"), curve, stop,
                             EpochCheckpoint(output, saved_config, run, curve, stop), TerminateOnNaN()], **fit)
        _stop_if_diverged(curve.records, config.finetune_lr)

    progress.stage = "saving"
    thresholds = task.thresholds(val_labels, predict_probabilities(model, val_data, task), config.threshold)
    log(task.describe_thresholds(thresholds, table.attributes, config.threshold))

    metadata = BundleMetadata(
        attributes=table.attributes,
        label_header_fingerprint=header_fingerprint(table.attributes),
        image_size=config.image_size,
        thresholds=thresholds,
        task=task.name,
        untrained=untrained,
        backbone=config.backbone,
        pretrained=pretrained,
        precision=policy,
        settings={**asdict(config), "split": list(config.split)},
        data_dir=str(Path(config.data).resolve()),
        labels_file=str(Path(config.labels).resolve()) if config.labels else "",
        split=run["split"],
        seen_digests=sorted({digests[paths[i]] for i in (*rows["train"], *rows["val"]) if paths[i] in digests}),
        epochs_trained=len(curve.records),
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    with interrupts_deferred():
        progress.bundle = save_bundle(output, model, metadata)
        progress.stage = "scoring"
    remove_checkpoint(output)
    bundle = load_bundle(progress.bundle)
    log(f"saved model bundle to {bundle.path} ({time.time() - started:.0f} s so far)")

    if len(rows["test"]) == 0:
        log("no test split (too few images): skipping the test evaluation")
        return {}
    report = evaluate_bundle(bundle, config.data, table.subset(rows["test"]), output, config.batch_size)
    log(f"test split ({len(rows['test'])} images):\n{task.format_report(report)}")
    plots = ", ".join(str(output / name) for name in (LOSS_CURVE_FILE, *task.report_files))
    log(f"test {task.headline(report)}; metrics in {output / METRICS_FILE}, plots in {plots}; "
        f"total {time.time() - started:.0f} s")
    return report


def resume_training(output_dir: str | Path, log=print, progress: RunProgress | None = None) -> dict:
    """Continue the interrupted run in `output_dir` with its own settings, from its last completed epoch."""
    checkpoint = read_checkpoint(output_dir)
    try:
        config = config_from_settings({**checkpoint.config, "output": str(output_dir)})
    except (TypeError, ValueError, KeyError) as error:
        raise DefectTFError(f"the checkpoint in {checkpoint.directory} is damaged (its settings: {error}); start a "
                            "new run without --resume") from None
    return train(config, log, resume=checkpoint, progress=progress)
