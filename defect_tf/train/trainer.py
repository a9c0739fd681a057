"""A training run from start to end: its data prepared (train/preparation.py), the model built on the devices
train/strategy.py chose, the two phases (train/phases.py), thresholds calibrated on the validation split, the
bundle saved, the test split scored. The output folder is claimed and locked first; an interrupted run resumes
from its last epoch. On several machines only the chief writes there: the others train into a temporary folder."""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from defect_tf.bundle.layout import BUNDLE_DIR
from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import Bundle, load_bundle, save_bundle
from defect_tf.data.augmentation import build_training_transforms
from defect_tf.data.cache import CACHE_DIR, remove_cache, start_cache
from defect_tf.data.labels import header_fingerprint, known_mask
from defect_tf.data.pipeline import make_dataset, steps_per_epoch
from defect_tf.data.sampling import balance_groups, describe_groups
from defect_tf.errors import DefectTFError
from defect_tf.evaluate.evaluation import METRICS_FILE, evaluate_bundle
from defect_tf.evaluate.metrics import average_precision
from defect_tf.evaluate.thresholds import NAIVE_THRESHOLD
from defect_tf.inference.predictor import predict_probabilities
from defect_tf.io import output_folder
from defect_tf.models.classifier import build_classifier
from defect_tf.tasks import TASKS
from defect_tf.train.callbacks import HISTORY_FILE, LOSS_CURVE_FILE
from defect_tf.train.checkpoints import CHECKPOINT_DIR, Checkpoint, read_checkpoint, remove_checkpoint
from defect_tf.train.config import TrainConfig, config_from_settings
from defect_tf.train.dtype_policy import set_precision
from defect_tf.train.label_filling import (
    FILLED_LABELS_FILE,
    confident_limits,
    describe_filling,
    describe_rounds,
    fill_rows,
    missing_cells,
    write_filled,
)
from defect_tf.train.losses import LossSettings
from defect_tf.train.phases import TwoPhases
from defect_tf.train.preparation import SKIPPED_FILE, SPLIT_FILE, RunData, prepare_run
from defect_tf.train.progress import RunProgress, interrupts_deferred
from defect_tf.train.strategy import Devices, choose_devices
from defect_tf.train.worker_loop import PEER_FAILURES, worker_lost

# Everything a training run writes into its output folder (claimed there before the run writes anything).
OUTPUTS = (BUNDLE_DIR, CHECKPOINT_DIR, CACHE_DIR, SPLIT_FILE, HISTORY_FILE, LOSS_CURVE_FILE, METRICS_FILE, SKIPPED_FILE,
           FILLED_LABELS_FILE,
           *dict.fromkeys(name for task in TASKS.values() for name in task.report_files))


def train(config: TrainConfig, log=print, resume: Checkpoint | None = None,
          progress: RunProgress | None = None) -> dict:
    """Train, calibrate, save the bundle and score the test split; returns the test report.

    With `resume` (see `resume_training`), training continues from that checkpoint's epoch, on the
    split and labels it started with. `progress` follows the run's stage (for what an interruption says).
    With `fill_na` rounds, each round trains again on the split of the first (train/label_filling.py); the report
    is the last round's.
    """
    progress = progress or RunProgress()
    config.validate()
    output_folder.check_no_overlap(config.output, config.data)
    devices = choose_devices(config.strategy, config.batch_size)  # first: MultiWorkerMirroredStrategy needs it
    for flag, used in (("--linear-probe on", config.linear_probe == "on"), ("--fill-na", config.fill_na > 0)):
        if devices.own_loop and used:
            raise DefectTFError(f"{flag} is not available with several machines (--strategy multiworker); train "
                                "without it, or on one machine")
    try:
        if devices.chief:
            with output_folder.locked(config.output):
                report, next_round = _train(config, devices, log, resume, progress)
                while next_round is not None:  # --fill-na: again from the start on the labels filled in
                    progress.start_round()
                    report, next_round = _train(next_round, devices, log, None, progress)
        else:  # only the chief writes the run's files; this worker's go to a folder removed at the end
            with tempfile.TemporaryDirectory(prefix="defect_tf-worker-") as scratch:
                report, _ = _train(replace(config, output=scratch), devices, log, resume, progress)
    except PEER_FAILURES as error:
        if devices.name != "multiworker":
            raise
        raise worker_lost(error) from None
    progress.stage = "done"
    return report


def _train(config: TrainConfig, devices: Devices, log, resume: Checkpoint | None,
           progress: RunProgress) -> tuple[dict, TrainConfig | None]:
    """One training run: its test report, and the next filling round's settings (None: the last round)."""
    started = time.time()
    output = output_folder.claim(config.output, OUTPUTS)
    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config.precision)
    if not resume and (output / CHECKPOINT_DIR).exists():
        log(f"note: {output} holds an interrupted run's checkpoint; this new run replaces it "
            f"(to continue that run instead: train.py --resume --output {output})")
        remove_checkpoint(output)
    data = prepare_run(config, output, resume, log)
    log(devices.line)
    start_cache(data.cache)
    try:
        report, bundle = _fit_save_score(config, data, devices, output, resume, policy, progress, started, log)
        if not bundle or not (config.fill_na or config.na_labels):  # na_labels: the last of several rounds
            return report, None
        progress.stage = "filling"
        return report, _fill_missing(config, data, bundle, output, progress, log)
    finally:
        remove_cache(data.cache)


def _fit_save_score(config: TrainConfig, data: RunData, devices: Devices, output: Path, resume: Checkpoint | None,
                    policy: str, progress: RunProgress, started: float, log) -> tuple[dict, Bundle | None]:
    train_data, val_data = _datasets(config, data, devices, log)
    with devices.scope():  # the model's variables are the strategy's; TwoPhases compiles in the same scope
        model = _model(config, data)
    probe_data = None  # the linear probe's: the training images in order, not augmented
    if config.linear_probe == "on":
        probe_data = make_dataset(data.files("train"), data.labels("train"), config.image_size, config.batch_size,
                                  cache=data.cache, name="train", shards=data.shards)
    phases = TwoPhases(model, _loss(config, data, log), config, train_data, val_data,
                       steps_per_epoch(len(data.rows["train"]), config.batch_size), output, data.record,
                       data.weights_file is not None, resume, log, devices, probe_data, data.labels("train"))
    if resume:
        log(f"resuming after epoch {resume.epoch} ({resume.phase}) from {resume.directory}")
    progress.stage = "training"
    phases.warm_up(policy)
    phases.fine_tune()
    if not devices.chief:
        log("training done; the chief saves the bundle and scores the test split")
        return {}, None
    if devices.own_loop:  # Keras's evaluate fails under the strategy (as fit does) and predict would split the
        # images over the workers: the chief calibrates, saves and scores the same weights outside the strategy
        weights = model.get_weights()
        phases.model = model = _model(config, data)
        model.set_weights(weights)
    progress.stage = "saving"
    bundle = _save(config, data, phases, val_data, policy, output, progress, log)
    log(f"saved model bundle to {bundle.path} ({time.time() - started:.0f} s so far)")
    return _score(config, data, bundle, output, started, log), bundle


def _fill_missing(config: TrainConfig, data: RunData, bundle: Bundle, output: Path, progress: RunProgress,
                  log) -> TrainConfig | None:
    """Fill the training images' NA cells where `bundle` is confident (train/label_filling.py); returns the next
    round's settings, or None after the last round, where there is nothing to fill or no validation label to set
    the cut on. After the last round, says how each round did on the validation labels (never filled in)."""
    train_rows = data.rows["train"]
    missing = missing_cells(data.table, config.na_labels)[train_rows]
    if not missing.any() or not known_mask(data.labels("val")).any():
        log("--fill-na: " + ("no NA cell in the training split: nothing to fill in" if not missing.any() else
                             "no validation labels to set the confidence cut on: the NA cells stay masked"))
        return None

    def probabilities_of(part: str) -> np.ndarray:
        return predict_probabilities(bundle.model, make_dataset(
            data.files(part), data.labels(part), config.image_size, config.batch_size, cache=data.cache, name=part,
            shards=data.shards), data.task)

    probabilities = {"val": probabilities_of("val")}
    with warnings.catch_warnings():  # an attribute without both classes in validation: NaN, left out of the mean
        warnings.simplefilter("ignore", RuntimeWarning)
        progress.round_scores.append(float(np.nanmean(average_precision(data.labels("val"), probabilities["val"]))))
    if not config.fill_na:
        log(describe_rounds(progress.round_scores))
        return None
    probabilities["train"] = probabilities_of("train")
    low, high = confident_limits(probabilities["val"], data.labels("val"))
    values = data.table.values.copy()
    values[train_rows], counts = fill_rows(values[train_rows], missing, probabilities["train"], low, high)
    path = write_filled(data.table, values, output / FILLED_LABELS_FILE)
    log(describe_filling(counts, config.fill_na, path))
    return replace(config, labels=str(path), split_file=str(output / SPLIT_FILE), fill_na=config.fill_na - 1,
                   na_labels=config.na_labels or config.labels)


def _datasets(config: TrainConfig, data: RunData, devices: Devices, log):
    """The training pipeline (augmented, mixed, balanced as configured) and the validation one."""
    augment, mixup = build_training_transforms(config.rotation, config.cutout, config.augment, config.mixup,
                                               seed=config.seed)
    groups = balance_groups(data.labels("train")) if config.sampler == "balanced" else None
    train_data = make_dataset(data.files("train"), data.labels("train"), config.image_size,
                              devices.batch_for(config.batch_size, len(data.rows["train"])), training=True,
                              augment=augment, mixup=mixup, groups=groups, seed=config.seed, cache=data.cache,
                              name="train", shards=data.shards)
    val_data = None  # none held out: a pretrained run with too few trains on them (train/preparation.py)
    if len(data.rows["val"]):
        val_data = make_dataset(data.files("val"), data.labels("val"), config.image_size,
                                devices.batch_for(config.batch_size, len(data.rows["val"])), cache=data.cache,
                                name="val", shards=data.shards)
    if groups is not None:
        log(describe_groups(groups, data.table.attributes))
    if mixup:
        log(f"MixUp: each training batch blends image pairs and their labels, weight ~ Beta({config.mixup:g}, "
            f"{config.mixup:g})")
    return train_data, val_data


def _loss(config: TrainConfig, data: RunData, log):
    """The task's loss over the training labels (class weights unless the balanced sampler balances instead)."""
    class_weights = config.class_weights and config.sampler != "balanced"
    loss, weighting = data.task.loss(data.labels("train"), data.table.attributes,
                                     LossSettings(config.gamma, config.alpha, class_weights, config.label_smoothing))
    log(weighting)
    return loss


def _model(config: TrainConfig, data: RunData) -> keras.Model:
    return build_classifier(config.backbone, len(data.table.attributes), config.image_size, data.weights_file,
                            config.dropout, config.pooling, config.head, config.attention)


def _save(config: TrainConfig, data: RunData, phases: TwoPhases, val_data, policy: str, output: Path,
          progress: RunProgress, log):
    """Thresholds from the validation split, then the bundle, saved with interruptions held back; returns it."""
    model, task = phases.model, data.task
    if val_data is not None:
        thresholds = task.thresholds(data.labels("val"), predict_probabilities(model, val_data, task),
                                     config.threshold)
        log(task.describe_thresholds(thresholds, data.table.attributes, config.threshold))
    else:
        cut = NAIVE_THRESHOLD if config.threshold is None else config.threshold
        none = np.zeros((0, len(data.table.attributes)))
        thresholds = task.thresholds(none, none, cut)
        log(f"thresholds: {cut:g} for every attribute (no validation images to calibrate on)" if thresholds else
            task.describe_thresholds(thresholds, data.table.attributes, config.threshold))
    paths = data.paths
    metadata = BundleMetadata(
        attributes=data.table.attributes,
        label_header_fingerprint=header_fingerprint(data.table.attributes),
        image_size=config.image_size,
        thresholds=thresholds,
        task=task.name,
        untrained=data.untrained,
        backbone=config.backbone,
        pretrained=data.weights_file is not None,
        precision=policy,
        settings={**asdict(config), "split": list(config.split)},
        data_dir=str(Path(config.data).resolve()),
        labels_file=str(Path(config.labels).resolve()) if config.labels else "",
        split=data.record["split"],
        seen_digests=sorted({data.digests[paths[i]] for i in (*data.rows["train"], *data.rows["val"])
                             if paths[i] in data.digests}),
        epochs_trained=sum(record["epoch"] > 0 for record in phases.curve.records),  # epoch 0: the linear probe
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    with interrupts_deferred():
        progress.bundle = save_bundle(output, model, metadata)
        progress.stage = "scoring"
    remove_checkpoint(output)
    return load_bundle(progress.bundle)


def _score(config: TrainConfig, data: RunData, bundle, output: Path, started: float, log) -> dict:
    """The saved bundle's report on the test split (empty without one), with its plots."""
    task, test_rows = data.task, data.rows["test"]
    if len(test_rows) == 0:
        log("no test split (too few images): skipping the test evaluation")
        return {}
    report = evaluate_bundle(bundle, config.data, data.table.subset(test_rows), output, config.batch_size,
                             shards=data.shards)
    log(f"test split ({len(test_rows)} images):\n{task.format_report(report)}")
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
