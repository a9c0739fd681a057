"""The devices a run trains on (train/strategy.py): one device, or replicas kept in step by MirroredStrategy, with
the batch given as the global batch; the machines TF_CONFIG names (tests/test_workers.py trains on two)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from defect_tf.errors import DefectTFError
from defect_tf.train.strategy import Cluster, choose_devices, read_cluster

ROOT = Path(__file__).resolve().parents[1]


def test_the_machines_tf_config_names_are_counted():
    assert read_cluster({}) is None
    cluster = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "chief", "index": 0}}
    assert read_cluster({"TF_CONFIG": json.dumps(cluster)}) == Cluster(3, "chief", 0, True)
    with pytest.raises(DefectTFError, match="TF_CONFIG is not the JSON tf.distribute reads"):
        read_cluster({"TF_CONFIG": "workers: 2"})


def test_the_chief_is_the_one_tf_distribute_names():
    def cluster(roles: dict, task_type: str, index: int) -> Cluster:
        return read_cluster({"TF_CONFIG": json.dumps({"cluster": roles, "task": {"type": task_type, "index": index}})})

    workers = {"worker": ["a:1", "b:1"]}
    assert [cluster(workers, "worker", index).chief for index in (0, 1)] == [True, False]
    with_chief = {"chief": ["a:1"], "worker": ["b:1"]}
    assert [cluster(with_chief, role, 0).chief for role in ("chief", "worker")] == [True, False]
    assert read_cluster({}) is None


def test_one_device_and_a_cluster_that_one_machine_cannot_train_on(monkeypatch):
    devices = choose_devices("one", 32)
    assert (devices.name, devices.replicas, devices.line, devices.chief) == ("one", 1, "devices: one (CPU:0)", True)
    with pytest.raises(DefectTFError, match="--strategy multiworker needs TF_CONFIG naming the machines"):
        choose_devices("multiworker", 32)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    for name in ("one", "mirrored"):
        with pytest.raises(DefectTFError, match=f"TF_CONFIG names 2 machines, but --strategy {name} trains on this "
                                                "machine only: use --strategy multiworker"):
            choose_devices(name, 32)


def test_batches_split_over_replicas_as_keras_can_take_them():
    from defect_tf.train.strategy import Devices

    two = Devices(None, "mirrored", 2, "")
    # 34 images in 8s: 4 x 8 + 2, every batch splits; 7 in 8s: one batch of 7 splits 4 + 3 (refused), in 4s 4 + 3
    # (the first even, the last leaves no replica empty); 33 in 8s ends with 1 image (a replica empty), in 6s with 3
    assert [two.batch_for(8, images) for images in (34, 7, 33, 16)] == [8, 4, 6, 8]
    assert Devices(None, "one", 1, "").batch_for(8, 7) == 8


RUN_TWICE = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from defect_tf.apps import train
for strategy in ("one", "mirrored"):
    status = train.main([*sys.argv[2:], "--output", f"{sys.argv[1]}/{strategy}", "--strategy", strategy])
    assert status == 0, strategy
"""


@pytest.mark.integration
def test_two_mirrored_replicas_train_as_one_device_does_with_the_same_global_batch(tiny_demo, tmp_path):
    from defect_tf.bundle.store import load_bundle

    root, _ = tiny_demo
    flags = ["--data", str(root / "images"), "--labels", str(root / "labels.txt"), "--backbone", "small_cnn",
             "--weights", "none", "--image-size", "32", "--batch-size", "8", "--warmup-epochs", "2",
             "--finetune-epochs", "1", "--seed", "1"]
    done = subprocess.run([sys.executable, "-c", RUN_TWICE, str(tmp_path), *flags], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "devices: one (CPU:0)" in done.stdout
    assert "devices: mirrored over 2 replica(s) (CPU:0, CPU:1); --batch-size 8 is the global batch, 4 per replica" \
        in done.stdout
    losses = {name: [epoch["loss"] for epoch in json.loads((tmp_path / name / "history.json").read_text())]
              for name in ("one", "mirrored")}
    assert len(losses["mirrored"]) == 3
    # the same seed, data order and global batch: the losses agree but for BatchNormalization's statistics, taken
    # per replica over 4 images instead of 8
    for one, mirrored in zip(losses["one"], losses["mirrored"]):
        assert mirrored == pytest.approx(one, rel=0.1)
    bundle = load_bundle(tmp_path / "mirrored")
    assert bundle.metadata.settings["strategy"] == "mirrored"
    scores = {name: json.loads((tmp_path / name / "metrics.json").read_text())["calibrated"]["macro"]["f1"]
              for name in ("one", "mirrored")}
    assert abs(scores["one"] - scores["mirrored"]) <= 0.25, scores


def fenced(text: str, heading: str, language: str) -> str:
    """The first `language` code block after `heading` in a Markdown text."""
    after = text[text.index(heading):]
    start = after.index(f"```{language}\n") + len(language) + 4
    return after[start:after.index("```", start)]


@pytest.mark.integration  # runs the examples' shell lines
def test_the_cluster_examples_in_the_scaling_guide_give_each_worker_its_tf_config(tmp_path):
    import yaml  # gradio's dependency

    guide = (ROOT / "docs" / "scaling.md").read_text()
    # Slurm: the srun line with a stand-in for scontrol listing two nodes, as task 1
    script = fenced(guide, "### On Slurm", "bash")
    line = script[script.index("srun bash -c '") + len("srun bash -c '"):script.rindex("'")]
    (tmp_path / "scontrol").write_text("#!/bin/sh\necho node-a\necho node-b\n")
    (tmp_path / "scontrol").chmod(0o755)
    printed = subprocess.run(["bash", "-c", line.replace("exec defect-tf train", 'echo "$TF_CONFIG" #')],
                             capture_output=True, text=True, timeout=30,
                             env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_PROCID": "1",
                                  "SLURM_JOB_NODELIST": "node-[a-b]"}).stdout
    cluster = read_cluster({"TF_CONFIG": printed})
    assert (cluster.workers, cluster.role, cluster.index, cluster.chief) == (2, "worker", 1, False)
    assert json.loads(printed)["cluster"]["worker"] == ["node-a:12345", "node-b:12345"]
    # Kubernetes: the Job's command as the pod of index 0 runs it
    service, job = yaml.safe_load_all(fenced(guide, "### On Kubernetes", "yaml"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    command = container["args"][0].replace("exec defect-tf train", 'echo "$TF_CONFIG" #')
    printed = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "JOB_COMPLETION_INDEX": "0"}).stdout
    cluster = read_cluster({"TF_CONFIG": printed})
    assert (cluster.workers, cluster.index, cluster.chief) == (2, 0, True)
    hosts = [f"{job['metadata']['name']}-{index}.{service['metadata']['name']}:12345" for index in range(2)]
    assert json.loads(printed)["cluster"]["worker"] == hosts
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
