"""`defect-tf prepare`: a training set's images checked, split and written once as shards (data/shards.py), chosen
exactly as train.py would choose them from the folder (the same task, checks and split for the same flags), so
training from the shards and from the folder sees the same images, labels and split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defect_tf.data.shard_writer import plan_shards, planned_files, write_shards
from defect_tf.data.shards import MANIFEST_FILE, SHARD_BYTES, TABLE_FILE, is_shard_folder
from defect_tf.data.sources import load_source
from defect_tf.data.splits import SPLITS
from defect_tf.errors import DefectTFError, LabelError
from defect_tf.io import output_folder
from defect_tf.tasks import task_labels
from defect_tf.train.config import TrainConfig
from defect_tf.train.preparation import SKIPPED_FILE, choose_split, drop_bad_images

DEFAULT_SHARD_FOLDER = "shards"


def prepare_shards(config: TrainConfig, log=print, shard_bytes: int = SHARD_BYTES) -> dict:
    """Check `config.data`'s images, split them as train.py would, and write the shards into `config.output`
    (resuming a killed run's); returns the manifest."""
    if is_shard_folder(config.data):
        raise DefectTFError(f"--data {config.data} holds prepared shards already; train from it with "
                            f"train.py --data {config.data}")
    output_folder.check_no_overlap(config.output, config.data)
    with output_folder.locked(config.output):
        output = output_folder.claim(config.output, (MANIFEST_FILE, TABLE_FILE, SKIPPED_FILE))
        source = load_source(config.data, config.labels)
        task, task_source, problems = task_labels(source, config.task, config.positive)
        if problems:
            raise LabelError("\n".join(problems))
        log(f"task: {task.name}; labels from {config.labels or f'the class folders of {config.data}'} "
            f"({task_source.layout})")
        table, digests = drop_bad_images(config, task_source.table, output, log, resuming=False)
        split, split_source = choose_split(config, table, source.split)
        log("split: " + ", ".join(f"{name} {int(np.sum(split == name))}" for name in SPLITS) + f" ({split_source})")
        paths = [str(Path(config.data) / image) for image in table.images]
        plan = plan_shards(split, config.image_size, shard_bytes)
        output_folder.claim(output, planned_files(plan))
        about = {"layout": source.layout, "one_class_per_image": source.one_class_per_image, "task": task.name,
                 "data": str(Path(config.data).resolve()),
                 "labels": str(Path(config.labels).resolve()) if config.labels else "", "seed": config.seed}
        manifest = write_shards(output, plan, source.table.only(table.images), split, paths,
                                [digests.get(path, "") for path in paths], config.image_size, about, log)
    size = "" if config.image_size == TrainConfig(data="").image_size else f" --image-size {config.image_size}"
    log(f"prepared: {manifest['images']:,} images in {len(manifest['shards'])} shards in {output}; train with "
        f"python train.py --data {config.output}{size}")
    return manifest
