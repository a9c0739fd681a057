"""Prepared shards (`defect-tf prepare`, data/shard_writer.py): a run's images decoded, resized and checked once,
stored as TFRecord files per split beside a manifest (`shards.json`) and the label table (`table.json`).
`train.py --data SHARDS/` reads them with parallel, interleaved reads instead of decoding the image files.

A record holds one image (uint8, image_size x image_size x 3, as data/pipeline.py decodes it) and its row in the
table. Each split's rows, in table order, are dealt in turns over groups of `interleave` shards (row 0 to the
group's first shard, row 1 to its second, ...), so reading a split's shards `interleave` at a time, one record from
each in turn, gives back the table's order with a few records buffered per shard (reading whole shards in order
would buffer whole shards). Only a finished manifest's shards are read: a shard is written under a temporary name
and renamed when whole."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from defect_tf.data.labels import LabelTable
from defect_tf.data.sources import LabelSource
from defect_tf.data.splits import SPLITS
from defect_tf.errors import DefectTFError
from defect_tf.io.untrusted import read_text
from defect_tf.limits import MAX_JSON_FILE_BYTES

PARALLEL_CALLS = os.cpu_count() or 1  # records parsed on every core

MANIFEST_FILE = "shards.json"
TABLE_FILE = "table.json"
FORMAT = "defect_tf-shards"
VERSION = 1
SHARD_BYTES = 128 << 20  # a shard's target size: large enough to read fast, small enough to write and copy one by one
PARALLEL_READS = 4  # shards read at once, one record from each in turn (a new folder's `interleave`)


def is_shard_folder(folder: str | Path) -> bool:
    """Whether `folder` holds prepared shards (finished or not)."""
    return (Path(folder) / MANIFEST_FILE).is_file()


def records_per_shard(image_size: int, shard_bytes: int = SHARD_BYTES) -> int:
    """How many images of `image_size` fill one shard."""
    return max(1, shard_bytes // (image_size * image_size * 3))


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def table_text(table: LabelTable, split: np.ndarray, digests: list[str]) -> str:
    """The label table the shards were prepared from, with each row's split and content digest, as JSON."""
    return json.dumps({"attributes": table.attributes, "images": table.images, "values": table.values.tolist(),
                       "split": [str(name) for name in split], "digests": digests})


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_record(image: np.ndarray, row: int) -> bytes:
    """One image (uint8, H x W x 3) and its table row as a serialised tf.train.Example."""
    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
               "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[row]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_manifest(folder: Path) -> dict:
    """A shard folder's manifest, read through the bounded reader; a damaged one is a one-line error."""
    try:
        manifest = json.loads(read_text(folder / MANIFEST_FILE, MAX_JSON_FILE_BYTES, "shard manifest"))
    except ValueError as error:
        raise DefectTFError(f"{folder / MANIFEST_FILE}: not a shard manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DefectTFError(f"{folder / MANIFEST_FILE}: not a shard manifest written by defect-tf prepare")
    if manifest.get("version") != VERSION:
        raise DefectTFError(f"{folder / MANIFEST_FILE}: shard format version {manifest.get('version')!r}; this "
                            f"version of the tool reads version {VERSION}: prepare the shards again")
    return manifest


@dataclass(frozen=True)
class Shards:
    """A finished shard folder: its label table, split and digests, and its images as a tf.data source."""

    folder: Path
    image_size: int
    interleave: int  # shards read at once, a record from each in turn (how the rows were dealt)
    layout: str
    one_class_per_image: bool
    table: LabelTable
    split: np.ndarray  # each row's part
    digests: list[str]  # each row's content digest
    files: list[tuple[str, str]]  # each shard's file and split, in reading order

    def label_source(self) -> LabelSource:
        """The labels as the prepared folder's source gave them (the task is chosen from them as from the folder)."""
        return LabelSource(self.table, [], f"{self.layout}, prepared in {self.folder}",
                           one_class_per_image=self.one_class_per_image)

    def path(self, image: str) -> str:
        """The name a row's image goes by in a run (as `data/image` does for a folder)."""
        return str(self.folder / image)

    def digests_by_path(self) -> dict[str, str]:
        """Each image's content digest, by the name it goes by in a run (see `path`)."""
        return {self.path(image): digest for image, digest in zip(self.table.images, self.digests)}

    def parts(self) -> dict[str, str]:
        """image -> train / val / test, as prepared."""
        return dict(zip(self.table.images, self.split.tolist()))

    def images(self, paths: list[str]) -> tf.data.Dataset:
        """(uint8 image, position in `paths`) for the images named `paths` (see `path`), in the shards' order:
        the order of `paths` when they are one split's rows in table order. Only the splits holding them are read."""
        row_of = {self.path(image): row for row, image in enumerate(self.table.images)}
        unknown = [path for path in paths if path not in row_of]
        if unknown:
            raise DefectTFError(f"{self.folder}: {len(unknown)} image(s) are not in these shards, e.g. {unknown[0]}")
        position = np.full(len(self.table.images), -1, np.int64)
        position[[row_of[path] for path in paths]] = np.arange(len(paths))
        splits = set(self.split[position >= 0])
        chosen = [str(self.folder / name) for name, split in self.files if split in splits]
        if not chosen:
            return tf.data.Dataset.from_tensor_slices(
                (tf.zeros((0, self.image_size, self.image_size, 3), tf.uint8), tf.zeros((0,), tf.int64)))
        records = tf.data.Dataset.from_tensor_slices(chosen).interleave(
            tf.data.TFRecordDataset, cycle_length=self.interleave, block_length=1, num_parallel_calls=self.interleave,
            deterministic=True)
        lookup, side = tf.constant(position), self.image_size

        def parse(record):
            example = tf.io.parse_single_example(record, {"image": tf.io.FixedLenFeature([], tf.string),
                                                          "row": tf.io.FixedLenFeature([], tf.int64)})
            place = tf.gather(lookup, example["row"])
            return tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), (side, side, 3)), place

        chosen_records = records.map(parse, num_parallel_calls=PARALLEL_CALLS).filter(lambda image, place: place >= 0)
        # the count is known (Keras's predict and validation warn of a dataset that may run out otherwise)
        return chosen_records.apply(tf.data.experimental.assert_cardinality(len(paths)))


def open_shards(folder: str | Path) -> Shards:
    """A finished shard folder, checked: its manifest, its table (against the manifest's hash) and every shard's
    size. Every problem is named at once in one error."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest.get("finished"):
        raise DefectTFError(f"{folder}: defect-tf prepare did not finish writing these shards; run the same command "
                            "again to finish them (finished shards are kept)")
    kinds = {"image_size": int, "interleave": int, "layout": str, "one_class_per_image": bool, "shards": list,
             "labels_sha256": str}
    wrong = [key for key, kind in kinds.items() if not isinstance(manifest.get(key), kind)]
    if not wrong and not all(isinstance(entry, dict) and isinstance(entry.get("file"), str)
                             and Path(entry["file"]).name == entry["file"] and entry.get("split") in SPLITS
                             and isinstance(entry.get("records"), int) and isinstance(entry.get("bytes"), int)
                             for entry in manifest["shards"]):
        wrong = ["shards"]
    if wrong:
        raise DefectTFError(f"{folder / MANIFEST_FILE}: not a shard manifest ({', '.join(wrong)} missing or of the "
                            "wrong type); prepare the shards again")
    text = read_text(folder / TABLE_FILE, MAX_JSON_FILE_BYTES, "shard label table")
    problems = []
    if sha256(text) != manifest.get("labels_sha256"):
        problems.append(f"{TABLE_FILE} is not the table the manifest names (its hash differs)")
    try:
        rows = json.loads(text)
        table = LabelTable(list(rows["attributes"]), list(rows["images"]), np.asarray(rows["values"], np.float32))
        split, digests = np.asarray(rows["split"], dtype=object), list(rows["digests"])
        if table.values.shape != (len(table.images), len(table.attributes)) or not (
                len(split) == len(digests) == len(table.images)) or not set(split) <= set(SPLITS):
            raise ValueError("its columns do not match")
    except (ValueError, KeyError, TypeError) as error:
        raise DefectTFError(f"{folder / TABLE_FILE}: not a shard label table ({error})") from None
    files = []
    for split_name in SPLITS:
        held = 0
        for shard in (entry for entry in manifest["shards"] if entry["split"] == split_name):
            path = folder / shard["file"]
            if not path.is_file():
                problems.append(f"{shard['file']} is missing")
            elif path.stat().st_size != shard["bytes"]:
                problems.append(f"{shard['file']} holds {path.stat().st_size:,} bytes, not the {shard['bytes']:,} "
                                "it was written with")
            files.append((shard["file"], split_name))
            held += shard["records"]
        if held != int(np.sum(split == split_name)):
            problems.append(f"the {split_name} shards hold {held} images, the table {int(np.sum(split == split_name))}")
    if problems:
        raise DefectTFError(f"{folder}: damaged shards: {'; '.join(problems)}; prepare them again into a new folder")
    return Shards(folder, manifest["image_size"], manifest["interleave"], manifest["layout"],
                  manifest["one_class_per_image"], table, split, digests, files)
