"""Writing prepared shards (data/shards.py) once, resumably: the manifest is written first (unfinished, with the
plan: which rows go into which shard), each shard under a temporary name then renamed when whole, and the
manifest again, finished, at the end. A killed run's next start keeps every finished shard and writes the rest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from defect_tf.data.labels import LabelTable, label_counts
from defect_tf.data.pipeline import decoded_images
from defect_tf.data.shards import (
    FORMAT,
    MANIFEST_FILE,
    PARALLEL_READS,
    SHARD_BYTES,
    TABLE_FILE,
    VERSION,
    encode_record,
    read_manifest,
    records_per_shard,
    sha256,
    shard_name,
    table_text,
)
from defect_tf.data.splits import SPLITS
from defect_tf.errors import DefectTFError
from defect_tf.io.files import disk_full, is_disk_full, write_text
from defect_tf.io.untrusted import describe_size
from defect_tf.progress_bar import progress_bar

PARTIAL = ".partial"  # a shard being written: never listed in a manifest, so never read


def plan_shards(split: np.ndarray, image_size: int, shard_bytes: int = SHARD_BYTES,
                interleave: int = PARALLEL_READS) -> list[dict]:
    """Each shard's file name, split and table rows: each split's rows in table order, in groups that fill
    `interleave` shards, dealt in turns over the group's shards (data/shards.py reads them back in that order)."""
    per_shard, plan = records_per_shard(image_size, shard_bytes), []
    for name in SPLITS:
        rows, cut = np.flatnonzero(split == name), []
        for start in range(0, len(rows), per_shard * interleave):
            group = rows[start:start + per_shard * interleave]
            shards = -(-len(group) // per_shard)
            cut += [group[turn::shards].tolist() for turn in range(shards)]
        plan += [{"file": shard_name(name, index, len(cut)), "split": name, "rows": chosen}
                 for index, chosen in enumerate(cut)]
    return plan


def planned_files(plan: list[dict]) -> list[str]:
    """Every file name the plan may write (finished and temporary), to claim in the output folder first."""
    return [name for shard in plan for name in (shard["file"], shard["file"] + PARTIAL)]


def _manifest(plan: list[dict], image_size: int, interleave: int, labels_hash: str, about: dict, finished: bool,
              folder: Path, table: LabelTable, split: np.ndarray) -> dict:
    shards = [{"file": shard["file"], "split": shard["split"], "records": len(shard["rows"]),
               **({"bytes": (folder / shard["file"]).stat().st_size} if finished else {})} for shard in plan]
    counts = {}
    for name in SPLITS:
        values = table.values[split == name]
        per_attribute = label_counts(values)
        counts[name] = {"images": int(len(values)),
                        **{key: dict(zip(table.attributes, map(int, per_attribute[key])))
                           for key in ("positive", "negative", "na")}}
    return {"format": FORMAT, "version": VERSION, "finished": finished, "image_size": image_size,
            "interleave": interleave,
            "labels_sha256": labels_hash, "images": len(table.images), "counts": counts, **about, "shards": shards}


def _same_plan(old: dict, new: dict) -> bool:
    def key(manifest: dict) -> tuple:
        return (manifest.get("image_size"), manifest.get("interleave"), manifest.get("labels_sha256"),
                [(shard.get("file"), shard.get("split"), shard.get("records")) for shard in manifest.get("shards", [])])
    return key(old) == key(new)


def _write_shard(path: Path, paths: list[str], rows: list[int], image_size: int,
                 count: Callable[[int], None]) -> None:
    """One shard under a temporary name, flushed to disk, then renamed: a file by its final name is whole."""
    partial = path.with_name(path.name + PARTIAL)
    try:
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for image, row in zip(decoded_images(paths, image_size).as_numpy_iterator(), rows):
                writer.write(encode_record(image, row))
                count(1)
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except (OSError, tf.errors.OpError) as error:
        partial.unlink(missing_ok=True)
        if is_disk_full(error if isinstance(error, OSError) else None) or "No space left" in str(error):
            raise disk_full(path, "the shards written before it are kept; free some space and run the same command "
                                  "again") from None
        raise


def write_shards(folder: Path, plan: list[dict], table: LabelTable, split: np.ndarray, paths: list[str],
                 digests: list[str], image_size: int, about: dict, log=print, interleave: int = PARALLEL_READS) -> dict:
    """Write (or finish writing) the shards `plan` (see `plan_shards`) of `table`'s images (`paths`, each row's
    file) into `folder`, which the caller has locked and claimed the plan's files in; returns the finished
    manifest. `about`: the source's layout and what prepared it, kept in the manifest."""
    text = table_text(table, split, digests)
    manifest = _manifest(plan, image_size, interleave, sha256(text), about, False, folder, table, split)
    if (folder / MANIFEST_FILE).is_file():
        old = read_manifest(folder)
        if not _same_plan(old, manifest):
            raise DefectTFError(f"{folder} holds shards prepared from other images, labels or settings; a shard is "
                                "never rewritten, so prepare into a new --output folder")
        if old.get("finished"):
            log(f"{folder}: already prepared ({len(plan)} shards); nothing to do")
            return old
    else:
        write_text(folder / TABLE_FILE, text)
        write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=1))
    finished = [(folder / shard["file"]).is_file() for shard in plan]
    done = [shard for shard, whole in zip(plan, finished) if whole]
    todo = [shard for shard, whole in zip(plan, finished) if not whole]
    needed = sum(len(shard["rows"]) for shard in todo) * (image_size * image_size * 3 + 64)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DefectTFError(f"the shards need about {describe_size(needed)} more in {folder}, which has "
                            f"{describe_size(free)} free; free some space or prepare into a larger disk")
    images_done = sum(len(shard["rows"]) for shard in done)
    if done:
        log(f"resuming: {len(done)} of {len(plan)} shards were finished before; writing the other {len(todo)}")
    log(f"writing {len(table.images):,} images at {image_size} px into {len(plan)} shards in {folder}")
    with progress_bar(total=len(table.images), initial=images_done, desc="shards", unit="image") as bar:
        for shard in todo:
            _write_shard(folder / shard["file"], [paths[row] for row in shard["rows"]], shard["rows"], image_size,
                         bar.update)
    manifest = _manifest(plan, image_size, interleave, sha256(text), about, True, folder, table, split)
    write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=1))
    return manifest
