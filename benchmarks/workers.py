"""One machine or two: time per epoch of the same training on one device, on one worker of a cluster (the tool's own
loop instead of Keras's `fit`) and on two workers on this machine (127.0.0.1), with the same global batch; and the
communication cost per step (an all-reduce of the model's gradients between the two workers).

    python benchmarks/workers.py [--images 2000] [--image-size 128] [--backbone mobilenet_v3_small] [--work DIR]

Each arm is `train.py` in processes of its own (TF_CONFIG for the cluster arms), --backbone from scratch, three
epochs: the first decodes the images into the cache and traces the step; the last two are timed. On a machine with
2 cores, two workers share the same cores, so they cannot be faster: the table shows the overhead. What a second
real host would give is estimated from the measured step time and the gradient bytes each step must send.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, number, record, run, work_folder  # first: quiets TensorFlow's start-up

# isort: split
from defect_tf.data.demo import generate_demo
from defect_tf.data.pipeline import steps_per_epoch
from defect_tf.train.strategy import local_cluster

EPOCHS = 3
BATCH_SIZE = 32
TRAIN_SHARE = 0.7  # the default split's training share
ALL_REDUCES = 30
NETWORKS = {"1 Gb/s": 1e9 / 8, "10 Gb/s": 10e9 / 8}  # bytes per second

ALL_REDUCE = """
import json, sys, time
import tensorflow as tf
from defect_tf.models.classifier import build_classifier
strategy = tf.distribute.MultiWorkerMirroredStrategy()
model = build_classifier(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), None)
gradients = [tf.ones_like(weight) for weight in model.trainable_weights]

@tf.function
def all_reduce():
    context = lambda: tf.distribute.get_replica_context().all_reduce("SUM", gradients)
    return strategy.run(context)

all_reduce()  # traced, and the workers met
times = []
for _ in range(int(sys.argv[4])):
    started = time.perf_counter()
    [tensor.numpy() for tensor in all_reduce()[:1]]
    times.append(time.perf_counter() - started)
print(json.dumps({"seconds": sorted(times)[len(times) // 2],
                  "bytes": sum(int(tf.size(weight)) * 4 for weight in model.trainable_weights)}))
"""


def cluster_run(commands: list[list[str]], log: Path) -> None:
    """Each command in a process of its own, as the workers of one TF_CONFIG cluster on 127.0.0.1."""
    processes = []
    for index, (command, tf_config) in enumerate(zip(commands, local_cluster(len(commands)))):
        environment = {**os.environ, "TF_CONFIG": tf_config}
        out = open(log.with_suffix(f".{index}.log"), "w")
        processes.append((subprocess.Popen([sys.executable, *command], stdout=out, stderr=subprocess.STDOUT,
                                           env=environment, text=True), out))
    for process, out in processes:
        process.wait()
        out.close()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(process.args[1:])} failed: see {out.name}")


def train_arm(name: str, args: argparse.Namespace, folder: Path, work: Path) -> dict:
    """One arm's epoch seconds (from the chief's history) and its wall time."""
    folder_name = f"run-{name.replace(' ', '-')}"
    output = work / folder_name
    command = [str(ROOT / "train.py"), "--data", str(folder / "images"), "--labels", str(folder / "labels.txt"),
               "--output", str(output), "--backbone", args.backbone, "--weights", "none", "--image-size",
               str(args.image_size), "--batch-size", str(BATCH_SIZE), "--warmup-epochs", str(EPOCHS),
               "--finetune-epochs", "0", "--seed", "0"]
    started = time.time()
    if name == "one device":
        done = subprocess.run([sys.executable, *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    else:
        workers = 1 if name == "one worker" else 2
        cluster_run([[*command, "--strategy", "multiworker"]] * workers, work / folder_name)
    history = json.loads((output / "history.json").read_text())
    return {"epoch_seconds": [item["seconds"] for item in history], "wall_seconds": time.time() - started}


def all_reduce_cost(args: argparse.Namespace, attributes: int, work: Path) -> dict:
    """The median seconds of one all-reduce of the model's gradients between two workers on 127.0.0.1."""
    command = ["-c", ALL_REDUCE, args.backbone, str(attributes), str(args.image_size), str(ALL_REDUCES)]
    cluster_run([command, command], work / "all-reduce")
    return json.loads((work / "all-reduce.0.log").read_text().strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="mobilenet_v3_small", help="trained from scratch (no weights)")
    parser.add_argument("--work", help="folder for the images and runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = work_folder(args.work, "workers_")
    folder = work / f"demo-{args.images}-{args.image_size}"
    if not (folder / "labels.txt").is_file():
        generate_demo(folder, n_images=args.images, size=args.image_size, seed=0)
    attributes = len((folder / "labels.txt").read_text().splitlines()[0].split()) - 1
    arms = {}
    for name in ("one device", "one worker", "two workers"):
        arms[name] = train_arm(name, args, folder, work)
        print(f"{name}: epochs {arms[name]['epoch_seconds']} s", flush=True)
    cost = all_reduce_cost(args, attributes, work)
    print(f"all-reduce of {cost['bytes']:,} bytes: {cost['seconds'] * 1000:.1f} ms", flush=True)

    steps = steps_per_epoch(int(args.images * TRAIN_SHARE), BATCH_SIZE)
    timed = {name: sum(arm["epoch_seconds"][1:]) / (EPOCHS - 1) for name, arm in arms.items()}
    base = timed["one device"]
    rows = [f"| {name} | {seconds:.1f} | {seconds / steps * 1000:.0f} | {number(base / seconds, 2)} |"
            for name, seconds in timed.items()]
    # a second real host: each computes half of every batch, then both exchange the gradients (a ring all-reduce
    # of two hosts sends and receives the gradient bytes once each way)
    step = base / steps
    estimates = {network: step / 2 + cost["bytes"] / speed for network, speed in NETWORKS.items()}
    estimate_text = "; ".join(f"over {network}: {seconds * 1000:.0f} ms per step, {number(step / seconds, 2)} x one "
                              f"host" for network, seconds in estimates.items())
    markdown = (
        f"{args.backbone} from scratch at {args.image_size} px, {args.images:,} generated images ({steps} steps of a "
        f"global batch of {BATCH_SIZE} per epoch), {EPOCHS} epochs per arm, epochs 2-{EPOCHS} timed (the chief's "
        "`history.json`; validation included). One device: Keras's `fit`. One worker: `TF_CONFIG` naming one "
        "machine and `--strategy multiworker` (the tool's own loop, `train/worker_loop.py`). Two workers: two "
        f"processes on 127.0.0.1, {BATCH_SIZE // 2} images per worker per step, sharing this machine's cores.\n\n"
        "| arm | seconds per epoch | ms per step | speed vs one device |\n|---|---|---|---|\n" + "\n".join(rows) +
        f"\n\nCommunication: one all-reduce of the model's gradients ({cost['bytes'] / 2**20:.1f} MiB, float32) "
        f"between the two workers on 127.0.0.1 takes {cost['seconds'] * 1000:.1f} ms (median of {ALL_REDUCES}). "
        f"Expected with a second real host of this kind (half the batch each, plus sending the gradients once; "
        f"an estimate, not a measurement): {estimate_text}.")
    record("workers", "One machine or two: training on one device, one worker and two workers", markdown,
           {"arms": arms, "all_reduce": cost, "steps_per_epoch": steps,
            "estimated_step_seconds_second_host": estimates})
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
