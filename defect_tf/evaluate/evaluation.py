"""Scoring a trained bundle on labelled images: predict, score with the bundle's task, write metrics.json and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from defect_tf.bundle.store import Bundle
from defect_tf.data.checks import DataReport, check_images
from defect_tf.data.labels import LabelTable
from defect_tf.data.pipeline import make_dataset
from defect_tf.data.shards import Shards
from defect_tf.errors import ImageError, LabelError
from defect_tf.inference.predictor import PREDICT_BATCH, predict_probabilities
from defect_tf.io import output_folder
from defect_tf.io.files import write_text

METRICS_FILE = "metrics.json"


def align_attributes(table: LabelTable, attributes: list[str]) -> LabelTable:
    """Reorder a label table's columns to the model's attribute order; different attributes are an error."""
    if table.attributes == attributes:
        return table
    if sorted(table.attributes) != sorted(attributes):
        missing = [name for name in attributes if name not in table.attributes]
        extra = [name for name in table.attributes if name not in attributes]
        raise LabelError(f"the labels' attributes do not match the model's: the model has {attributes}; "
                         f"missing from the labels: {missing or 'none'}; not known to the model: {extra or 'none'}")
    order = [table.attributes.index(name) for name in attributes]
    return LabelTable(list(attributes), table.images, table.values[:, order])


def split_table(bundle: Bundle, table: LabelTable, split: str) -> LabelTable:
    """The rows of `table` in one of the bundle's saved splits (`all`: every row), e.g. to score the
    test split against another label file than the one the model was trained with."""
    if split == "all":
        return table
    wanted = bundle.metadata.split.get(split) or []
    if not wanted:
        raise LabelError(f"the model has no {split} split (its run had too few images to hold one out); score it on "
                         "other labelled images with --data DIR --labels FILE, or choose --split "
                         + " or ".join(name for name in (*bundle.metadata.split, "all")
                                       if name != split and (name == "all" or bundle.metadata.split[name])))
    rows = table.only(wanted)
    if not rows.images:
        raise LabelError(f"none of the model's {len(wanted)} {split} images are in this label file")
    return rows


def seen_in_training(bundle: Bundle, data_dir: str | Path, images: list[str],
                     digests: dict[str, str] | None = None) -> list[str]:
    """Those of `images` (under `data_dir`) that the bundle was trained or calibrated on (its train and val splits):
    the same files, or copies of them (`digests`: path -> content digest, checked against the bundle's)."""
    trained_dir = Path(bundle.metadata.data_dir)
    seen = {(trained_dir / image).resolve() for name in ("train", "val")
            for image in bundle.metadata.split.get(name, [])}
    known = set(bundle.metadata.seen_digests)
    paths = {image: str(Path(data_dir) / image) for image in images}
    return [image for image in images if Path(paths[image]).resolve() in seen
            or (digests or {}).get(paths[image]) in known]


def evaluate_bundle(bundle: Bundle, data_dir: str | Path, table: LabelTable, output_dir: str | Path,
                    batch_size: int = PREDICT_BATCH, inferencer=None, shards: Shards | None = None) -> dict:
    """Predict `table`'s images with the bundle (or with `inferencer`, a runtime's: an exported model), score them as
    its task does, write metrics.json and the task's plots. `shards`: `data_dir` is a prepared shard folder, whose
    images were checked when it was written."""
    task = bundle.task
    with output_folder.locked(output_dir):
        output_dir = output_folder.claim(output_dir, (METRICS_FILE, *task.report_files))
        table = align_attributes(table, bundle.attributes)
        values = task.prepare(table.values)
        paths = [str(Path(data_dir) / image) for image in table.images]
        if shards is None:
            headers, bad = check_images(paths)
            if bad:
                raise ImageError(DataReport(bad_images=bad).describe_bad_images())
            digests = {path: header.digest for path, header in headers.items()}
        else:
            digests = shards.digests_by_path()
        if inferencer is None:
            dataset = make_dataset(paths, values, bundle.image_size, batch_size, shards=shards)
            probabilities = predict_probabilities(bundle.model, dataset, task)
        else:
            batches = (inferencer.preprocess(paths[start:start + batch_size])[0]
                       for start in range(0, len(paths), batch_size))
            probabilities = np.concatenate([inferencer.forward(batch) for batch in batches])
        report = task.report(values, probabilities, bundle.thresholds, bundle.attributes)
        report["seen_in_training"] = len(seen_in_training(bundle, data_dir, table.images, digests))
        write_text(output_dir / METRICS_FILE, json.dumps(report, indent=1))
        task.plot(values, probabilities, bundle.thresholds, bundle.attributes, output_dir)
        return report
