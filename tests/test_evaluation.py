import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from defect_tf.data.labels import NA, LabelTable
from defect_tf.errors import LabelError
from defect_tf.evaluate.evaluation import align_attributes
from defect_tf.evaluate.metrics import classification_report
from defect_tf.evaluate.report import format_multilabel_report, multilabel_report

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_report_compares_calibrated_thresholds_with_0_5():
    labels = np.array([[1, 0], [0, 1], [1, NA], [0, 0]], np.float32)
    scores = np.array([[0.4, 0.1], [0.2, 0.9], [0.45, 0.5], [0.1, 0.6]])
    report = multilabel_report(labels, scores, np.array([0.3, 0.7]), ["scratch", "dent"])
    assert report["calibrated"]["per_attribute"]["f1"] == [1.0, 1.0]
    expected = classification_report(labels, scores >= 0.5)
    assert report["at_0.5"]["per_attribute"]["f1"] == pytest.approx(expected["per_attribute"]["f1"])
    assert report["calibrated"]["per_attribute"]["na"] == [0, 1]
    table = format_multilabel_report(report)
    assert "scratch" in table and "macro avg" in table and "exact match over 4 images" in table
    json.dumps(report)  # everything is JSON-ready
    assert "top-1 accuracy over the 3 images with exactly one positive label (highest score = that attribute): " \
           "0.667" in table  # images 1 and 2: right; image 3: its NA attribute scored 0.5 > 0.45


def test_a_single_attribute_report_has_no_top1_accuracy():
    labels = np.array([[1], [0], [1], [0]], np.float32)
    report = multilabel_report(labels, np.array([[0.9], [0.2], [0.3], [0.1]]), np.array([0.5]), ["defect"])
    assert "top-1" not in format_multilabel_report(report)  # its only attribute always has the highest score


def test_attribute_columns_are_matched_by_name():
    table = LabelTable(["dent", "scratch"], ["a.png"], np.array([[1, 0]], np.float32))
    np.testing.assert_array_equal(align_attributes(table, ["scratch", "dent"]).values, [[0, 1]])
    with pytest.raises(LabelError, match="missing from the labels: \\['crack'\\]"):
        align_attributes(table, ["scratch", "dent", "crack"])


def test_cli_scores_the_saved_test_split_by_default(trained_output):
    output, _, _ = trained_output
    result = run_cli("--model", output)
    assert result.returncode == 0, result.stderr
    assert "macro avg" in result.stdout and "scratch" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    bundle = json.loads((output / "bundle" / "bundle.json").read_text())
    assert metrics["images"] == len(bundle["split"]["test"])


def test_cli_json_and_other_label_file(trained_output, tiny_demo, tmp_path):
    output, _, _ = trained_output
    root, table = tiny_demo
    # the same images with every label known to be 0: scored against this truth instead
    zeros = tmp_path / "zeros.txt"
    zeros.write_text("image scratch dent crack stain\n" + "".join(f"{name} 0 0 0 0\n" for name in table.images))
    result = run_cli("--model", output, "--labels", zeros, "--split", "val", "--json", "--output", tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["calibrated"]["per_attribute"]["support"] == [0, 0, 0, 0]
    assert report["calibrated"]["per_attribute"]["na"] == [0, 0, 0, 0]
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "pr_curve.png").is_file()


def test_cli_rejects_labels_with_other_attributes(trained_output, tmp_path):
    output, _, _ = trained_output
    other = tmp_path / "other.txt"
    other.write_text("image rust\nx.png 1\n")
    result = run_cli("--model", output, "--labels", other, "--split", "all", "--data", tmp_path)
    assert result.returncode == 2 and "do not match the model's" in result.stderr


def test_the_report_says_what_its_figures_rest_on():
    labels = np.array([[1, NA], [0, NA], [1, NA]], np.float32)
    report = multilabel_report(labels, np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.9]]), np.array([0.5, 0.5]),
                             ["scratch", "dent"])
    assert report["unscored"] == ["dent"] and report["calibrated"]["macro"]["f1"] == 1.0
    assert report["calibrated"]["per_attribute"]["f1"] == [1.0, None]
    lines = format_multilabel_report(report).splitlines()
    assert "note: dent has no known label among these images: not scored, and left out of the averages" in lines
    assert ("warning: these figures rest on 3 image(s), fewer than 30: one image more or less right moves them a "
            "lot; label more images") in lines
    assert "warning: fewer than 5 positive images back the recall and F1 of: scratch (2)" in lines


def test_scoring_the_training_images_warns_that_the_figures_are_optimistic(trained_output, tiny_demo, tmp_path,
                                                                          capsys):
    from defect_tf.apps import evaluate
    from defect_tf.apps.cli import run

    output, _, _ = trained_output
    root, table = tiny_demo
    split = json.loads((output / "bundle" / "bundle.json").read_text())["split"]
    status = run(lambda: evaluate.main(["--model", str(output), "--data", str(root / "images"), "--labels",
                                        str(root / "labels.txt"), "--output", str(tmp_path)]))
    assert status == 0
    seen = len(split["train"]) + len(split["val"])
    assert (f"warning: {seen} of these {len(table.images)} images were used to train or calibrate this model "
            "(its train and val splits): these figures are optimistic, not a test") in capsys.readouterr().out
