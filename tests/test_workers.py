"""Training over several machines as tf.distribute runs it: two worker processes on 127.0.0.1 with TF_CONFIG, on CPU
(train/strategy.py, train/worker_loop.py). Only the chief writes the run's files; a worker that dies stops the run
on every worker, and `--resume` on each continues from the chief's last epoch."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from defect_tf.bundle.store import load_bundle
from defect_tf.train.checkpoints import read_checkpoint
from defect_tf.train.strategy import local_cluster

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = dict(warmup=2, finetune=3)
FLAGS = ["--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8", "--seed", "1",
         "--warmup-epochs", str(EPOCHS["warmup"]), "--finetune-epochs", str(EPOCHS["finetune"])]
EPOCH_LINE = re.compile(r"loss: ([0-9.]+) - val_loss: ([0-9.]+)")

pytestmark = pytest.mark.integration  # every test here trains


class Workers:
    """Two `train.py` processes, one per worker of a TF_CONFIG cluster on 127.0.0.1; each with its own TMPDIR."""

    def __init__(self, folder: Path, arguments: list[str]):
        self.folder, self.processes = folder, []
        for index, tf_config in enumerate(local_cluster(2)):
            scratch = folder / f"tmp{index}"
            scratch.mkdir(parents=True, exist_ok=True)
            environment = {**os.environ, "TMPDIR": str(scratch), "TF_CONFIG": tf_config}
            with open(folder / f"out{index}", "w") as out, open(folder / f"err{index}", "w") as err:
                self.processes.append(subprocess.Popen([sys.executable, str(ROOT / "train.py"), *arguments],
                                                       stdout=out, stderr=err, env=environment, text=True))

    def wait(self, timeout: float = 600) -> list[int]:
        return [process.wait(timeout=timeout) for process in self.processes]

    def output(self, index: int) -> str:
        return (self.folder / f"out{index}").read_text()

    def errors(self, index: int) -> str:
        return (self.folder / f"err{index}").read_text()


def printed_losses(text: str) -> list[tuple[float, float]]:
    return [(float(loss), float(val_loss)) for loss, val_loss in EPOCH_LINE.findall(text)]


def history(output: Path) -> list[dict]:
    return json.loads((output / "history.json").read_text())


def mean_loss(records: list[dict]) -> float:
    return sum(record["loss"] for record in records) / len(records)


def trained_weights(checkpoint) -> list[np.ndarray]:
    """The trainable weights a checkpoint holds (tiny demo: 4 attributes, small_cnn at 32 px)."""
    from defect_tf.models.classifier import build_classifier

    model = build_classifier("small_cnn", 4, 32, None)
    model.load_weights(checkpoint.directory / checkpoint.weights_file)
    return [weight.numpy() for weight in model.trainable_weights]


def saved_epoch(output: Path) -> int:
    """The last epoch whose checkpoint `output` holds (0: none yet)."""
    state = output / "checkpoint" / "state.json"
    try:
        return int(json.loads(state.read_text())["epoch"]) if state.is_file() else 0
    except (OSError, ValueError, KeyError):
        return 0


def scratch_folders(run: Path) -> list[Path]:
    """The scratch folders in which worker 1 of `run` trains (it writes nothing of the run's)."""
    return sorted((run / "tmp1").glob("defect_tf-worker-*"))


def worker_saved_epoch(run: Path) -> int:
    """The last epoch worker 1 of `run` saved in its scratch folder (0: none yet)."""
    folders = scratch_folders(run)
    return saved_epoch(folders[0]) if folders else 0


def macro_f1(output: Path) -> float:
    return json.loads((output / "metrics.json").read_text())["calibrated"]["macro"]["f1"]


@pytest.fixture(scope="module")
def runs(tiny_demo, tmp_path_factory):
    """The same run on one device and on two workers, with the same global batch (8: 4 per worker)."""
    root, _ = tiny_demo
    folder = tmp_path_factory.mktemp("workers")
    data = ["--data", str(root / "images"), "--labels", str(root / "labels.txt"), *FLAGS]
    one = subprocess.run([sys.executable, str(ROOT / "train.py"), *data, "--output", str(folder / "one")],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    workers = Workers(folder / "two-run", [*data, "--output", str(folder / "two")])
    assert workers.wait() == [0, 0], workers.errors(0)[-3000:] + workers.errors(1)[-3000:]
    return root, folder, workers


def test_two_workers_train_in_step_as_one_device_does_and_only_the_chief_writes(runs):
    _, folder, workers = runs
    assert ("devices: multiworker over 2 machine(s), 2 replica(s); this is worker 0 (chief: writes the run's files);"
            " --batch-size 8 is the global batch, 4 per replica") in workers.output(0)
    assert "this is worker 1 (not the chief: writes nothing of the run's)" in workers.output(1)
    assert "training done; the chief saves the bundle and scores the test split" in workers.output(1)
    # in step: every epoch's loss is the same on both workers, and the chief's history records it
    chief, other = printed_losses(workers.output(0)), printed_losses(workers.output(1))
    total = EPOCHS["warmup"] + EPOCHS["finetune"]
    assert len(chief) == total and chief == other
    two, one = history(folder / "two"), history(folder / "one")
    assert [(round(r["loss"], 4), round(r["val_loss"], 4)) for r in two] == chief
    # as one device with the same seed and global batch: the first epoch sees the same batches, augmented alike,
    # and differs only by BatchNormalization's statistics (taken on each worker's 4 images instead of 8); later
    # epochs draw other augmentations (each pipeline prefetches differently), so only their mean comes close
    assert [r["epoch"] for r in two] == list(range(1, total + 1))
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=0.02)
    assert mean_loss(two) == pytest.approx(mean_loss(one), rel=0.1)
    bundle = load_bundle(folder / "two")
    assert bundle.metadata.epochs_trained == total
    assert abs(macro_f1(folder / "two") - macro_f1(folder / "one")) <= 0.25
    # the second worker wrote nothing of the run's and removed its own scratch folder
    assert sorted(path.name for path in (folder / "two").iterdir()) == \
        sorted(path.name for path in (folder / "one").iterdir())
    assert list((folder / "two-run" / "tmp1").iterdir()) == []


def test_a_killed_worker_stops_the_run_and_every_worker_resumes_from_the_chiefs_last_epoch(runs):
    root, folder, finished = runs
    output = folder / "killed"
    data = ["--data", str(root / "images"), "--labels", str(root / "labels.txt"), *FLAGS]
    workers = Workers(folder / "killed-run", [*data, "--output", str(output)])
    # kill worker 1 in fine-tuning once both have saved the same epoch (the worker's copy in its scratch folder is
    # written a moment after the chief's): the epoch after it cannot finish without worker 1
    deadline = time.time() + 300
    while time.time() < deadline and not 3 <= saved_epoch(output) == worker_saved_epoch(folder / "killed-run"):
        assert all(process.poll() is None for process in workers.processes), workers.errors(0)[-3000:]
        time.sleep(0.05)
    workers.processes[1].send_signal(signal.SIGKILL)
    started = time.time()
    status = workers.processes[0].wait(timeout=180)
    assert status == 2, workers.errors(0)[-3000:]
    stopped = time.time() - started
    checkpoint = read_checkpoint(output)
    assert checkpoint.epoch >= 3
    last_line = workers.errors(0).strip().splitlines()[-1]
    assert last_line.startswith("error: training stopped on every worker: a worker of the cluster died or stopped "
                                "answering (UnavailableError")
    assert last_line.endswith(f"the last completed epoch ({checkpoint.epoch}) is saved. Continue from it with: "
                              f"python train.py --resume --output {output} (on every worker)")
    assert "Traceback" not in workers.errors(0)
    assert stopped < 120
    assert not (output / "bundle").exists()
    # the killed worker could not remove its scratch folder: its last checkpoint holds the chief's weights (each
    # replica keeps its own BatchNormalization statistics, which are not trained)
    [scratch] = scratch_folders(folder / "killed-run")
    theirs = read_checkpoint(scratch)
    assert theirs.epoch == checkpoint.epoch
    chief_weights, worker_weights = (trained_weights(each) for each in (checkpoint, theirs))
    assert len(chief_weights) > 10
    for chief_weight, worker_weight in zip(chief_weights, worker_weights):
        np.testing.assert_array_equal(chief_weight, worker_weight)

    resumed = Workers(folder / "resumed-run", ["--resume", "--output", str(output)])
    assert resumed.wait() == [0, 0], resumed.errors(0)[-3000:] + resumed.errors(1)[-3000:]
    for index in range(2):
        assert f"resuming after epoch {checkpoint.epoch}" in resumed.output(index)
    total = EPOCHS["warmup"] + EPOCHS["finetune"]
    records, uninterrupted = history(output), history(folder / "two")
    assert [r["epoch"] for r in records] == list(range(1, total + 1))
    # the epochs before the kill are the uninterrupted run's (the same seed on the same two workers); the rest
    # continue from the checkpoint on freshly shuffled and augmented batches, so only the outcome comes close
    kept = checkpoint.epoch
    assert [(r["loss"], r["val_loss"]) for r in records[:kept]] == \
        [(r["loss"], r["val_loss"]) for r in uninterrupted[:kept]]
    assert load_bundle(output).metadata.epochs_trained == total
    assert not (output / "checkpoint").exists()
    assert abs(macro_f1(output) - macro_f1(folder / "two")) <= 0.25
    assert list((folder / "resumed-run" / "tmp1").iterdir()) == []
