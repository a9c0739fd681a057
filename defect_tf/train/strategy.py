"""How a run spreads over one machine's devices (tf.distribute): one device, or a replica per local GPU kept in
step by MirroredStrategy. The model, its optimiser, loss and metrics are built inside the strategy's scope
(train/trainer.py, train/phases.py); Keras splits each batch over the replicas.

`--batch-size` is the global batch: each of N replicas takes 1/N of it, and the learning rate is the one given
(scale it yourself when you scale the batch; docs/scaling.md). Training over several machines
(MultiWorkerMirroredStrategy with TF_CONFIG) is refused: Keras 3's `fit` fails under it (keras-team/keras#20585).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

import tensorflow as tf

from defect_tf.errors import DefectTFError

STRATEGIES = ("auto", "one", "mirrored")
MULTI_WORKER_ISSUE = "https://github.com/keras-team/keras/issues/20585"


@dataclass(frozen=True)
class Devices:
    strategy: tf.distribute.Strategy
    name: str  # "one" or "mirrored"
    replicas: int
    line: str  # what the run says about it

    def batch_for(self, batch_size: int, images: int) -> int:
        """The batch size for a dataset of `images` on these replicas: `batch_size`, unless a batch would split
        unevenly where Keras 3 cannot take it; then the largest multiple of the replicas below that can. Keras
        averages a mirrored run's first batch across replicas to learn its shapes (which fails on replicas of
        different sizes), and a replica left without an image fails in BatchNormalization."""
        if self.replicas == 1 or images < self.replicas:
            return batch_size

        def splits(size: int) -> bool:
            first, last = min(size, images), images % size
            return first % self.replicas == 0 and (last == 0 or last >= self.replicas)

        sizes = [size for size in range(batch_size, 0, -1) if size % self.replicas == 0 and splits(size)]
        return batch_size if splits(batch_size) or not sizes else sizes[0]

    def scope(self):
        """The strategy's scope: variables made in it (model, optimiser) are placed and mirrored by it."""
        return self.strategy.scope() if self.name == "mirrored" else contextlib.nullcontext()


def cluster_workers(environment: dict | None = None) -> int:
    """How many machines TF_CONFIG names (0 without one)."""
    text = (os.environ if environment is None else environment).get("TF_CONFIG", "")
    if not text:
        return 0
    try:
        cluster = json.loads(text).get("cluster", {})
        return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))
    except (ValueError, AttributeError, TypeError):
        raise DefectTFError("TF_CONFIG is not the JSON tf.distribute reads ({\"cluster\": {\"worker\": [...]}, "
                            "\"task\": {...}})") from None


def choose_devices(name: str, batch_size: int) -> Devices:
    """The strategy `name` asks for (auto: mirrored over the local GPUs when there are several, else one device)."""
    if name not in STRATEGIES:
        raise DefectTFError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    workers = cluster_workers()
    if workers > 1:
        raise DefectTFError(f"TF_CONFIG names {workers} machines, but training over several machines is not "
                            f"available: Keras 3's fit fails under MultiWorkerMirroredStrategy ({MULTI_WORKER_ISSUE})."
                            " Unset TF_CONFIG to train on this machine")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one"
    if name == "one":
        device = gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name
        return Devices(tf.distribute.get_strategy(), "one", 1, f"devices: one ({_short(device)})")
    devices = [device.name for device in (gpus or tf.config.list_logical_devices("CPU"))]
    strategy = tf.distribute.MirroredStrategy(devices)
    replicas = strategy.num_replicas_in_sync
    share = f"{batch_size / replicas:g}" if batch_size % replicas else f"{batch_size // replicas}"
    return Devices(strategy, "mirrored", replicas,
                   f"devices: mirrored over {replicas} replica(s) ({', '.join(_short(d) for d in devices)}); "
                   f"--batch-size {batch_size} is the global batch, {share} per replica")


def _short(device: str) -> str:
    return device.split("device:")[-1]
