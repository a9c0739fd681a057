"""How a run spreads over devices (tf.distribute): one device; a replica per local GPU kept in step by
MirroredStrategy; or one or more replicas on each of several machines named by TF_CONFIG, kept in step by
MultiWorkerMirroredStrategy. The model, its optimiser, loss and metrics are built inside the strategy's scope
(train/trainer.py, train/phases.py).

`--batch-size` is the global batch: each of N replicas takes 1/N of it, and the learning rate is the one given
(scale it yourself when you scale the batch; docs/scaling.md). Keras 3's `fit` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585), so a multi-worker run trains with the loop of
train/worker_loop.py; every worker reads all the data and keeps its share of each batch (sharding by data), so
every worker uses the same seed. Only the chief writes the run's files (train/trainer.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass

import tensorflow as tf

from defect_tf.errors import DefectTFError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


@dataclass(frozen=True)
class Devices:
    strategy: tf.distribute.Strategy
    name: str  # "one", "mirrored" or "multiworker"
    replicas: int  # over every machine
    line: str  # what the run says about it
    chief: bool = True  # this process writes the run's files (the others write to a folder they remove)

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
        return self.strategy.scope() if self.name != "one" else contextlib.nullcontext()

    @property
    def own_loop(self) -> bool:
        """Whether the phases train with train/worker_loop.py instead of Keras's `fit` (which fails here)."""
        return self.name == "multiworker"

    def distribute(self, dataset: tf.data.Dataset):
        """`dataset` (batched by the global batch) as the strategy hands it to its replicas: every worker runs the
        whole pipeline with the same seed and keeps its replicas' part of each batch."""
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))


@dataclass(frozen=True)
class Cluster:
    """The machines TF_CONFIG names, and this process's place among them."""

    workers: int  # machines (chief and workers)
    role: str  # this process's task type: "chief" or "worker"
    index: int
    has_chief: bool  # whether a machine is named chief

    @property
    def chief(self) -> bool:
        """tf.distribute's rule: the chief, or worker 0 when no machine is named chief."""
        return self.role == "chief" or (self.role == "worker" and self.index == 0 and not self.has_chief)


def read_cluster(environment: dict | None = None) -> Cluster | None:
    """The cluster TF_CONFIG describes (None without one)."""
    text = (os.environ if environment is None else environment).get("TF_CONFIG", "")
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config.get("cluster", {}), config.get("task", {})
        workers = sum(len(cluster.get(role, [])) for role in ("chief", "worker"))
        return Cluster(workers, str(task.get("type", "worker")), int(task.get("index", 0)), bool(cluster.get("chief")))
    except (ValueError, AttributeError, TypeError):
        raise DefectTFError("TF_CONFIG is not the JSON tf.distribute reads ({\"cluster\": {\"worker\": [...]}, "
                            "\"task\": {\"type\": \"worker\", \"index\": 0}})") from None


def local_cluster(workers: int) -> list[str]:
    """The TF_CONFIG of each of `workers` processes on this machine (127.0.0.1, ports free now): a cluster to try
    training over several machines on one, as tests/test_workers.py and benchmarks/workers.py do."""
    sockets = [socket.socket() for _ in range(workers)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{each.getsockname()[1]}" for each in sockets]}
    for each in sockets:
        each.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(workers)]


def choose_devices(name: str, batch_size: int) -> Devices:
    """The strategy `name` asks for (auto: several machines when TF_CONFIG names them, else mirrored over the
    local GPUs when there are several, else one device). Made before any other TensorFlow work of the run, as
    MultiWorkerMirroredStrategy needs."""
    if name not in STRATEGIES:
        raise DefectTFError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    cluster = read_cluster()
    workers = cluster.workers if cluster else 0
    if name == "auto" and workers > 1:
        name = "multiworker"
    if name == "multiworker":
        if workers < 1:
            raise DefectTFError("--strategy multiworker needs TF_CONFIG naming the machines (docs/scaling.md: "
                                "several machines)")
        return _multi_worker(cluster, batch_size)
    if workers > 1:
        raise DefectTFError(f"TF_CONFIG names {workers} machines, but --strategy {name} trains on this machine only: "
                            "use --strategy multiworker (or auto), or unset TF_CONFIG")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one"
    if name == "one":
        device = gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name
        return Devices(tf.distribute.get_strategy(), "one", 1, f"devices: one ({_short(device)})")
    devices = [device.name for device in (gpus or tf.config.list_logical_devices("CPU"))]
    strategy = tf.distribute.MirroredStrategy(devices)
    replicas = strategy.num_replicas_in_sync
    return Devices(strategy, "mirrored", replicas,
                   f"devices: mirrored over {replicas} replica(s) ({', '.join(_short(d) for d in devices)}); "
                   f"{_global_batch(batch_size, replicas)}")


def _multi_worker(cluster: Cluster, batch_size: int) -> Devices:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    role = "chief: writes the run's files" if cluster.chief else "not the chief: writes nothing of the run's"
    return Devices(strategy, "multiworker", replicas,
                   f"devices: multiworker over {cluster.workers} machine(s), {replicas} replica(s); this is "
                   f"{cluster.role} {cluster.index} ({role}); {_global_batch(batch_size, replicas)}",
                   chief=cluster.chief)


def _global_batch(batch_size: int, replicas: int) -> str:
    share = f"{batch_size / replicas:g}" if batch_size % replicas else f"{batch_size // replicas}"
    return f"--batch-size {batch_size} is the global batch, {share} per replica"


def _short(device: str) -> str:
    return device.split("device:")[-1]
