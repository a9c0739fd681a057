"""From the user's folder and labels to a run's rows, before any model exists: the task's labels, every image
checked (bad ones stop the run or are left out), the split (or the interrupted run's own split and labels, when
resuming), and where the decoded images are kept (data/cache.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.data.cache import CachePlan, plan_cache
from defect_tf.data.checks import check_data
from defect_tf.data.labels import LabelTable, known_mask, label_counts
from defect_tf.data.shards import Shards, is_shard_folder, open_shards
from defect_tf.data.sources import load_source
from defect_tf.data.splits import (
    MIN_VALIDATION_IMAGES,
    SPLITS,
    split_from_file,
    split_from_parts,
    stratified_split,
    train_on_small_validation,
    write_split,
)
from defect_tf.errors import DefectTFError, ImageError, LabelError
from defect_tf.io.files import write_text
from defect_tf.models.classifier import resolve_weights
from defect_tf.tasks import task_labels
from defect_tf.tasks.base import Task
from defect_tf.train.checkpoints import Checkpoint
from defect_tf.train.config import TrainConfig

SPLIT_FILE = "split.txt"
SKIPPED_FILE = "skipped_images.txt"


@dataclass
class RunData:
    """What a run trains on: its task, its labelled images (bad ones left out), their split, and the record of
    both that a checkpoint keeps."""

    task: Task
    table: LabelTable
    paths: np.ndarray  # each image's file
    rows: dict[str, np.ndarray]  # split name -> row indices of `table`
    untrained: list[str]  # attributes without a known label in the training split
    weights_file: str | None  # the backbone's pretrained weights (None: from scratch)
    digests: dict[str, str]  # path -> content digest of every readable image
    record: dict  # attributes, labels and split, as a checkpoint saves them
    cache: CachePlan  # where the decoded images are kept between epochs
    shards: Shards | None = None  # the prepared shards the images are read from (None: their files)

    def labels(self, part: str) -> np.ndarray:
        return self.table.values[self.rows[part]]

    def files(self, part: str) -> list[str]:
        return list(self.paths[self.rows[part]])


def drop_bad_images(config: TrainConfig, table: LabelTable, output: Path, log,
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


def choose_split(config: TrainConfig, table: LabelTable, source_split: dict | None) -> tuple[np.ndarray, str]:
    """A new run's split and where it came from: a split file, the train/ val/ test/ folders, or seeded."""
    if config.split_file:
        return (split_from_file(config.split_file, table.images, table.values, config.split, config.seed),
                f"from {config.split_file}")
    if source_split is not None:
        split = split_from_parts(source_split, table.images, table.values, config.split, config.seed,
                                 f"the train/ val/ test/ folders of {config.data}")
        return split, "from the train/ val/ test/ folders" + ("" if "val" in source_split.values()
                                                              else ", val carved out of train")
    return stratified_split(table.values, config.split, config.seed), f"seed {config.seed}"


def _opened_shards(config: TrainConfig) -> Shards | None:
    """The prepared shards --data names (None for an image folder); settings the shards fix are refused."""
    if not is_shard_folder(config.data):
        return None
    shards = open_shards(config.data)
    problems = []
    if config.labels:
        problems.append(f"--labels: the shards in {config.data} hold their labels; leave it out")
    if config.split_file:
        problems.append(f"--split-file: the shards in {config.data} hold their split; leave it out")
    if config.fill_na:
        problems.append(f"--fill-na writes a label file, and the shards in {config.data} hold their labels; train "
                        "from the images and their label file to fill NA cells in")
    if config.image_size != shards.image_size:
        problems.append(f"--image-size {config.image_size}: the shards in {config.data} hold images at "
                        f"{shards.image_size} px; pass --image-size {shards.image_size}, or prepare them again at "
                        f"{config.image_size}")
    if problems:
        raise DefectTFError("; ".join(problems))
    return shards


def prepare_run(config: TrainConfig, output: Path, resume: Checkpoint | None, log) -> RunData:
    """The run's task, checked images and split (saved to the output folder), with a line per step. From prepared
    shards (data/shards.py), the images were checked and the split chosen when they were written."""
    shards = _opened_shards(config)
    source = shards.label_source() if shards else load_source(config.data, config.labels)
    task, source, label_problems = task_labels(source, config.task, config.positive)
    if label_problems:
        raise LabelError("\n".join(label_problems))
    if config.task_problems(task.name):  # the layout chose the task: the settings meet it only now
        raise DefectTFError("; ".join(config.task_problems(task.name)))
    table, labels_from = source.table, config.labels or f"the class folders of {config.data}"
    if shards:
        labels_from = f"the shards in {config.data}"
    split = None
    if resume:
        table, split = _resumed_rows(resume, table, labels_from, log)
    log(f"task: {task.name}; labels from {labels_from} ({source.layout})")
    log(task.summarize(table))
    weights_file = resolve_weights(config.backbone, config.weights)  # before the image scan: fail fast offline
    if shards:
        digests = shards.digests_by_path()
    else:
        table, digests = drop_bad_images(config, table, output, log, resuming=resume is not None)
    paths = np.asarray([str(Path(config.data) / image) for image in table.images])

    trains_on_small_validation = config.trains_on_small_validation(weights_file is not None)
    if split is not None:
        split_source = f"the interrupted run's own split, from {resume.directory}"
    else:
        if shards:
            split = split_from_parts(shards.parts(), table.images, table.values, config.split, config.seed,
                                     f"the shards in {config.data}")
            split_source = f"as prepared in {config.data}"
        else:
            split, split_source = choose_split(config, table, source.split)
        held_out = int(np.sum(split == "val"))
        if weights_file is not None and 0 < held_out < MIN_VALIDATION_IMAGES:
            if trains_on_small_validation:
                log(f"the validation split would hold {held_out} images, fewer than {MIN_VALIDATION_IMAGES}: too few "
                    "to steer early stopping or calibrate thresholds, so they train too and every epoch runs "
                    "(--small-val hold-out keeps them apart)")
                split = train_on_small_validation(split)
            elif config.small_validation == "auto":
                log(f"note: {held_out} validation images are few; --linear-probe on, which then trains on them, "
                    "measured best at 10 labelled images per class (docs/findings.md)")
    write_split(output / SPLIT_FILE, table.images, split)
    rows = {name: np.flatnonzero(split == name) for name in SPLITS}
    log("split: " + ", ".join(f"{name} {len(rows[name])}" for name in SPLITS)
        + f" ({split_source}, saved to {output / SPLIT_FILE})")
    if len(rows["train"]) == 0 or (len(rows["val"]) == 0 and not trains_on_small_validation):
        raise DefectTFError(f"{len(table.images)} images are too few to hold out a validation split; "
                            "label more images (a few dozen at the very least)")
    cache = plan_cache(config.cache, len(rows["train"]) + len(rows["val"]), config.image_size, output,
                       from_shards=shards is not None)
    train_labels = table.values[rows["train"]]
    untrained = [name for name, known in zip(table.attributes, known_mask(train_labels).any(axis=0)) if not known]
    if untrained:
        log(f"warning: {', '.join(map(repr, untrained))} has no known label in the training split: it is not "
            "learned, and the model will never report it as detected (marked untrained in the bundle)")
    for name, count in zip(table.attributes, label_counts(train_labels)["positive"]):
        if count == 0 and name not in untrained:
            log(f"warning: attribute {name!r} has no positive label in the training split: it cannot be learned")
    record = {"attributes": table.attributes,
              "labels": {image: row for image, row in zip(table.images, table.values.tolist())},
              "split": {name: [table.images[i] for i in rows[name]] for name in SPLITS}}
    log(cache.line)
    return RunData(task, table, paths, rows, untrained, weights_file, digests, record, cache, shards)
