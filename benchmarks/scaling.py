"""The cost of more data: time per epoch and peak memory of training on 1,000, 10,000 and 50,000 generated images
(128 px, 2 CPU cores), the decoded images cached in memory or on disk (`--cache`), or read from prepared shards.

    python benchmarks/scaling.py [--sizes 1000,10000,50000] [--caches memory,disk,shards] [--image-size 128]
                                 [--backbone mobilenet_v3_small] [--work DIR]

The demo generator makes the images (once per size, kept in --work). Each arm is `train.py` in a process of its
own under `/usr/bin/time -v` (its peak resident memory), --backbone from scratch, two epochs: the first reads and
decodes the files into the cache, the second reads the cache. The shards arm first writes the shards with
`prepare.py` (timed the same way), then trains from them with nothing cached (`--cache disk`: both epochs read the
shards). The step alone is the same fit with one batch held in memory (the limit an input pipeline can reach);
epoch 2 / step alone is the share the pipeline keeps.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, number, record, run, work_folder  # first: quiets TensorFlow's start-up

# isort: split
import tensorflow as tf

from defect_tf.data.demo import generate_demo
from defect_tf.data.pipeline import fixed_tuning, steps_per_epoch
from defect_tf.models.classifier import build_classifier
from defect_tf.train.losses import MaskedFocalLoss

EPOCHS = 2
DEFAULT_CACHES = "memory,disk,shards"
CACHE_TITLES = {"memory": "memory", "disk": "disk cache", "shards": "shards"}
BATCH_SIZE = 32
VAL_SHARE = 0.15  # the default split's validation share


def images(work: Path, count: int, image_size: int) -> Path:
    """`count` demo images at `image_size` in `work/demo-<count>` (generated once)."""
    folder = work / f"demo-{count}-{image_size}"
    if not (folder / "labels.txt").is_file():
        started = time.time()
        generate_demo(folder, n_images=count, size=image_size, seed=0)
        print(f"generated {count:,} images in {time.time() - started:.0f} s", flush=True)
    return folder


def step_alone(backbone: str, count: int, image_size: int, attributes: int) -> float:
    """Seconds of one epoch's training and validation steps on a batch held in memory (no input pipeline)."""
    model = build_classifier(backbone, attributes, image_size, None)
    model.compile(optimizer="adam", loss=MaskedFocalLoss(gamma=0.0))
    batch = (tf.random.uniform((BATCH_SIZE, image_size, image_size, 3), 0, 255),
             tf.cast(tf.random.uniform((BATCH_SIZE, attributes)) > 0.5, tf.float32))
    data = fixed_tuning(tf.data.Dataset.from_tensors(batch).repeat())  # as the product's: no autotuner stall
    train_steps = steps_per_epoch(int(count * (1 - 2 * VAL_SHARE)), BATCH_SIZE)
    val_steps = steps_per_epoch(int(count * VAL_SHARE), BATCH_SIZE)
    model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # traced once
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=train_steps, validation_data=data, validation_steps=val_steps, epochs=1,
              verbose=0)
    return time.perf_counter() - started


def timed(command: list[str]) -> tuple[subprocess.CompletedProcess, int, float]:
    """Run a program under `/usr/bin/time -v`: what it printed, its peak resident memory (bytes) and its seconds."""
    started = time.time()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) * 1024
    return done, peak, time.time() - started


def train_arm(backbone: str, folder: Path, work: Path, count: int, image_size: int, cache: str) -> dict:
    """One training run in its own process (after prepare.py's, for shards): its epochs' seconds, its peak memory
    and what it said of its cache."""
    data = ["--data", str(folder / "images"), "--labels", str(folder / "labels.txt")]
    arm = {}
    if cache == "shards":
        shards = work / f"shards-{count}-{image_size}"
        done, peak, seconds = timed([str(ROOT / "prepare.py"), *data, "--output", str(shards),
                                     "--image-size", str(image_size)])
        arm.update(prepare_seconds=seconds, prepare_peak_bytes=peak)
        data = ["--data", str(shards)]
    output = work / f"run-{count}-{cache}"
    done, peak, seconds = timed([str(ROOT / "train.py"), *data, "--output", str(output), "--backbone", backbone,
                                 "--weights", "none", "--image-size", str(image_size), "--batch-size",
                                 str(BATCH_SIZE), "--warmup-epochs", str(EPOCHS), "--finetune-epochs", "0",
                                 "--cache", "disk" if cache == "shards" else cache])
    history = json.loads((output / "history.json").read_text())
    said = next(line for line in done.stdout.splitlines() if line.startswith("cache: "))
    return {**arm, "epoch_seconds": [item["seconds"] for item in history], "peak_bytes": peak, "cache_line": said,
            "total_seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--caches", default=DEFAULT_CACHES)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="mobilenet_v3_small", help="trained from scratch (no weights)")
    parser.add_argument("--work", help="folder for the images and runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = work_folder(args.work, "scaling_")
    sizes = [int(size) for size in args.sizes.split(",")]
    caches = args.caches.split(",")
    figures = {}
    for count in sizes:
        folder = images(work, count, args.image_size)
        attributes = len((folder / "labels.txt").read_text().splitlines()[0].split()) - 1
        alone = step_alone(args.backbone, count, args.image_size, attributes)
        figures[str(count)] = {"step_alone_seconds": alone}
        for cache in caches:
            arm = train_arm(args.backbone, folder, work, count, args.image_size, cache)
            arm["kept_share"] = alone / arm["epoch_seconds"][-1]
            figures[str(count)][cache] = arm
            print(f"{count:,} images, {cache}: epochs {arm['epoch_seconds']} s, peak "
                  f"{arm['peak_bytes'] / 2**20:.0f} MiB; step alone {alone:.1f} s", flush=True)

    rows = []
    for count in sizes:
        for cache in caches:
            arm = figures[str(count)][cache]
            first, second = arm["epoch_seconds"][0], arm["epoch_seconds"][-1]
            prepared = (f"{arm['prepare_seconds']:.0f} s, {arm['prepare_peak_bytes'] / 2**20:,.0f} MiB"
                        if "prepare_seconds" in arm else "")
            rows.append(f"| {count:,} | {cache} | {prepared} | {first:.1f} | {second:.1f} | "
                        f"{figures[str(count)]['step_alone_seconds']:.1f} | {number(arm['kept_share'], 2)} | "
                        f"{arm['peak_bytes'] / 2**20:,.0f} |")
    decoded = {count: count * (1 - VAL_SHARE) * args.image_size ** 2 * 3 / 2**20 for count in sizes}
    markdown = (
        f"{args.backbone} from scratch at {args.image_size} px, batch {BATCH_SIZE}, {EPOCHS} epochs per arm; "
        "epoch 1 reads and decodes the files into the cache, epoch 2 reads the cache; the shards arm writes the "
        "shards first (`prepare.py`: its time and peak memory), then both its epochs read them. Step alone: the same "
        "epoch's steps on one "
        "batch held in memory; kept: step alone / epoch 2. Peak memory: the training process's maximum resident "
        "set (`/usr/bin/time -v`). Decoded training and validation images: "
        + ", ".join(f"{count:,}: {size:,.0f} MiB" for count, size in decoded.items()) + ".\n\n"
        "| images | cache | prepare | epoch 1 (s) | epoch 2 (s) | step alone (s) | kept | peak memory (MiB) |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    name = "scaling" if caches == DEFAULT_CACHES.split(",") else "scaling_" + "_".join(caches)
    record(name, "The cost of more data: " + " vs ".join(CACHE_TITLES[cache] for cache in caches), markdown,
           figures)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
