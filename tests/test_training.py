import json
import re
from pathlib import Path

import numpy as np
import pytest

from defect_tf.bundle import load_bundle
from defect_tf.demo import generate_demo
from defect_tf.training import train
from defect_tf.labels import parse_labels
from defect_tf.splits import read_split


def test_training_writes_bundle_split_history_curve_and_metrics(trained_output):
    output, config, report = trained_output
    for name in ("bundle/model.keras", "bundle/bundle.json", "split.txt", "history.json", "loss_curve.png",
                 "metrics.json", "pr_curve.png"):
        assert (output / name).is_file(), name
    assert not list(output.glob(".bundle*")), "no temporary bundle folders are left behind"
    assert report["calibrated"]["macro"]["f1"] is not None


def test_history_covers_both_phases_on_one_epoch_axis(trained_output):
    output, config, _ = trained_output
    history = json.loads((output / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2, 3, 4]
    assert [record["phase"] for record in history] == ["warm-up", "warm-up", "fine-tune", "fine-tune"]
    assert all(np.isfinite(record["loss"]) and np.isfinite(record["val_loss"]) for record in history)
    assert [record["learning_rate"] for record in history] == pytest.approx([config.lr] * 2 + [config.finetune_lr] * 2)


def test_bundle_is_self_describing(trained_output):
    output, config, _ = trained_output
    bundle = load_bundle(output)
    table = parse_labels(config.labels)
    assert bundle.attributes == table.attributes == ["scratch", "dent", "crack", "stain"]
    assert bundle.image_size == 32 and bundle.metadata["backbone"] == "efficientnet_b0"
    assert bundle.thresholds.shape == (4,) and np.all((bundle.thresholds > 0) & (bundle.thresholds < 1))
    assert bundle.metadata["settings"]["warmup_epochs"] == 2 and bundle.metadata["pretrained"] is False
    assert {"tensorflow", "keras", "numpy"} <= set(bundle.metadata["versions"])
    saved_split = read_split(output / "split.txt")
    assert sorted(bundle.metadata["split"]["test"]) == sorted(i for i, s in saved_split.items() if s == "test")
    assert sum(len(images) for images in bundle.metadata["split"].values()) == len(table.images)


def makefile_demo_flags() -> list[str]:
    """The training flags `make demo` uses, read from the Makefile so the test runs exactly those."""
    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text().replace("\\\n", " ")
    return re.search(r"^DEMO_FLAGS := (.*)$", text, re.MULTILINE).group(1).split()


@pytest.mark.slow
def test_demo_command_learns(tmp_path):
    """`make demo` for real: 1200 generated photos, the Makefile's flags, macro F1 >= 0.90 on the test split."""
    import train as train_cli

    generate_demo(tmp_path)
    config = train_cli.parse_args(["--data", str(tmp_path / "images"), "--labels", str(tmp_path / "labels.txt"),
                                   "--output", str(tmp_path / "outputs"), *makefile_demo_flags()])
    assert config.weights == "none"
    report = train(config, log=print)
    macro_f1 = report["calibrated"]["macro"]["f1"]
    print(f"demo test macro F1: {macro_f1:.3f}")
    assert macro_f1 >= 0.90
    assert all(f1 >= 0.8 for f1 in report["calibrated"]["per_attribute"]["f1"])
