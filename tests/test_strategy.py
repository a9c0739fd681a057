"""The devices a run trains on (train/strategy.py): one device, or replicas kept in step by MirroredStrategy, with
the batch given as the global batch; a cluster in TF_CONFIG is refused in one line (Keras 3 cannot train on it)."""

import json
import subprocess
import sys

import pytest

from defect_tf.errors import DefectTFError
from defect_tf.train.strategy import MULTI_WORKER_ISSUE, choose_devices, cluster_workers


def test_the_machines_tf_config_names_are_counted():
    assert cluster_workers({}) == 0
    cluster = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "chief", "index": 0}}
    assert cluster_workers({"TF_CONFIG": json.dumps(cluster)}) == 3
    with pytest.raises(DefectTFError, match="TF_CONFIG is not the JSON tf.distribute reads"):
        cluster_workers({"TF_CONFIG": "workers: 2"})


def test_one_device_and_a_cluster_refused_with_the_reason(monkeypatch):
    devices = choose_devices("one", 32)
    assert (devices.name, devices.replicas, devices.line) == ("one", 1, "devices: one (CPU:0)")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(DefectTFError, match=f"TF_CONFIG names 2 machines.*{MULTI_WORKER_ISSUE}.*Unset TF_CONFIG"):
        choose_devices("auto", 32)


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
