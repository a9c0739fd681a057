"""Multi-class and binary models trained for real from class folders, then evaluated, used and explained
from the command line, as a user with one folder per class would."""

import json

import numpy as np
import pytest
from PIL import Image

from defect_tf.apps import evaluate as evaluate_cli
from defect_tf.apps import predict as predict_cli
from defect_tf.apps import train as train_cli
from defect_tf.bundle.store import load_bundle

pytestmark = pytest.mark.integration
QUICK = ["--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
         "--warmup-epochs", "6", "--finetune-epochs", "2", "--seed", "1"]


def pattern(kind: str, rng) -> np.ndarray:
    """A 32 px photo of one class: horizontal stripes, vertical stripes, a checkerboard or a plain surface, with
    noise."""
    y, x = np.mgrid[0:32, 0:32]
    phase = rng.integers(0, 8)
    grey = {"horizontal": 200 * ((y + phase) // 4 % 2), "vertical": 200 * ((x + phase) // 4 % 2),
            "checks": 200 * (((y + phase) // 4 + (x + phase) // 4) % 2), "plain": np.full((32, 32), 100)}[kind]
    grey = np.clip(grey + rng.normal(0, 20, (32, 32)) + 20, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def make_folders(root, classes, per_class, seed=0):
    rng = np.random.default_rng(seed)
    for folder, kind in classes.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            Image.fromarray(pattern(kind, rng)).save(root / folder / f"{index:02d}.png")
    return root


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    root = make_folders(tmp_path_factory.mktemp("by_class") / "photos",
                        {"horizontal": "horizontal", "vertical": "vertical", "plain": "plain"}, 20)
    output = root.parent / "outputs"
    assert train_cli.main(["--data", str(root), "--output", str(output), *QUICK]) == 0
    return root, output


def test_class_folders_train_a_multiclass_model_that_evaluate_scores_with_a_confusion_matrix(multiclass_run, capsys):
    root, output = multiclass_run
    bundle = load_bundle(output)
    assert (bundle.task.name, bundle.attributes, bundle.metadata.labels_file) == (
        "multiclass", ["horizontal", "plain", "vertical"], "")
    assert (output / "confusion_matrix.png").is_file() and not (output / "pr_curve.png").exists()
    capsys.readouterr()
    assert evaluate_cli.main(["--model", str(output), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == len(bundle.metadata.split["test"]) == 9  # 15% of 60 images, every one with its class
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert report["accuracy"] >= 0.8  # three patterns a small CNN tells apart (chance: 1/3)
    assert evaluate_cli.main(["--model", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy over 9 images with a known class" in printed and "confusion matrix (rows: true class" in printed


def test_inference_prints_one_class_per_photo_and_explains_it(multiclass_run, capsys, tmp_path):
    root, output = multiclass_run
    photos = [str(root / "vertical" / "00.png"), str(root / "plain" / "01.png")]
    capsys.readouterr()
    assert predict_cli.main([*photos, "--model", str(output), "--explain", str(tmp_path / "heat")]) == 0
    lines = capsys.readouterr().out.splitlines()
    classes = [line for line in lines if line.startswith("  class ")]
    assert len(classes) == 2 and all(line.split()[1].rstrip(":") in ("horizontal", "plain", "vertical")
                                     for line in classes)
    assert len(list((tmp_path / "heat").glob("*.png"))) == 2  # one heatmap per photo: its class


def test_two_folders_with_train_and_test_parts_train_a_binary_detector(tmp_path, capsys):
    for part, count in (("train", 24), ("test", 8)):
        make_folders(tmp_path / "photos" / part, {"good": "plain", "scratched": "horizontal"}, count,
                     seed=len(part))
    output = tmp_path / "outputs"
    assert train_cli.main(["--data", str(tmp_path / "photos"), "--task", "binary", "--output", str(output),
                           *QUICK]) == 0
    bundle = load_bundle(output)
    assert (bundle.task.name, bundle.attributes) == ("binary", ["scratched"])
    assert sorted(bundle.metadata.split["test"]) == sorted(f"test/{c}/{i:02d}.png" for c in ("good", "scratched")
                                                           for i in range(8))
    assert (output / "roc_curve.png").is_file() and (output / "pr_curve.png").is_file()
    capsys.readouterr()
    assert evaluate_cli.main(["--model", str(output), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["operating_point"]["recall"] >= 0.75 and report["operating_point"]["false_positive_rate"] <= 0.25


def test_check_reports_a_class_folder_layout_and_a_fixed_threshold_is_kept(tmp_path, capsys):
    root = make_folders(tmp_path / "photos", {"good": "plain", "dent": "vertical"}, 12)
    assert train_cli.main(["--data", str(root), "--check"]) == 0
    out = capsys.readouterr().out
    assert "task: multiclass; labels from the class folders of" in out and "ok: 24 images listed" in out
    output = tmp_path / "outputs"
    assert train_cli.main(["--data", str(root), "--task", "binary", "--threshold", "0.4", "--output", str(output),
                           *QUICK[:-4], "--warmup-epochs", "1", "--finetune-epochs", "0"]) == 0
    assert load_bundle(output).metadata.thresholds == [0.4]


def test_a_setting_the_layouts_task_cannot_use_stops_before_training(tmp_path, capsys):
    from defect_tf.apps.cli import run

    root = make_folders(tmp_path / "photos", {"good": "plain", "dent": "vertical"}, 4)
    status = run(lambda: train_cli.main(["--data", str(root), "--alpha", "0.75", "--output", str(tmp_path / "out"),
                                         *QUICK]))
    assert status == 2
    assert "--alpha is for --task multilabel and binary, and this run is multiclass" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bundle").exists()


def test_ema_mixup_heavy_augmentation_and_the_balanced_sampler_train_a_model_that_still_learns(tmp_path, capsys):
    # rotation by up to ±72° (both presets) turns horizontal stripes nearly vertical, so this run's classes are
    # ones the augmentation keeps apart: stripes, checks, plain
    root = make_folders(tmp_path / "photos", {"stripes": "horizontal", "checks": "checks", "plain": "plain"}, 20)
    output = tmp_path / "outputs"
    assert train_cli.main(["--data", str(root), "--output", str(output), *QUICK, "--ema", "--mixup", "0.2",
                           "--sampler", "balanced", "--augment", "heavy"]) == 0
    out = capsys.readouterr().out
    assert "EMA of the weights (momentum 0.833) validated and kept" in out
    assert "--sampler balanced: batches draw each of 3 groups equally often" in out and "class weights: off" in out
    assert "MixUp: each training batch blends image pairs and their labels, weight ~ Beta(0.2, 0.2)" in out
    assert json.loads((output / "metrics.json").read_text())["accuracy"] >= 0.8


def test_the_small_defect_recipe_finds_a_few_pixels_on_a_large_photo(tmp_path):
    # DeepPCB's recipe (docs/findings.md, "Small defects on large boards"): the photo at its own side, a backbone
    # that keeps 1/8 of it, max pooling over positions, quarter turns, no Cutout (which could hide the defect)
    rng = np.random.default_rng(0)
    for folder in ("good", "defect"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        for index in range(30):
            grey = rng.normal(100, 15, (128, 128))
            if folder == "defect":  # 3 x 3 pixels: 0.05% of the photo
                y, x = rng.integers(4, 121, 2)
                grey[y:y + 3, x:x + 3] = 250
            photo = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            Image.fromarray(photo).save(tmp_path / "photos" / folder / f"{index:02d}.png")
    output = tmp_path / "outputs"
    recipe = ["--backbone", "small_cnn_hires", "--weights", "none", "--image-size", "128", "--pooling", "max",
              "--rotation", "quarter", "--no-cutout"]
    assert train_cli.main(["--data", str(tmp_path / "photos"), "--task", "binary", "--output", str(output), *recipe,
                           "--batch-size", "8", "--warmup-epochs", "8", "--finetune-epochs", "2", "--seed", "1"]) == 0
    assert load_bundle(output).model.get_layer("head").get_config()["pooling"] == "max"
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["images"] >= 8 and metrics["roc_auc"] == [1.0], metrics


@pytest.mark.parametrize("backbone, flags", [("convnext_tiny", []), ("resnet50", ["--head", "mlp", "--attention",
                                                                                   "spatial"]),
                                             ("mobilenet_v3_small", [])])
def test_the_sibling_backbones_train_save_reload_explain_and_serve_from_the_command_line(backbone, flags, tmp_path,
                                                                                          capsys):
    from defect_tf.apps.web_page import DefectApp
    from defect_tf.inference.predictor import Predictor

    root = make_folders(tmp_path / "photos", {"good": "plain", "dent": "vertical", "scratch": "horizontal"}, 6)
    output = tmp_path / "outputs"
    # --weights none: Keras's ImageNet weights for these can't be downloaded on this project's machines
    assert train_cli.main(["--data", str(root), "--output", str(output), "--backbone", backbone, "--weights", "none",
                           "--image-size", "32", "--batch-size", "8", "--warmup-epochs", "1", "--finetune-epochs", "0",
                           *flags]) == 0
    bundle = load_bundle(output)
    assert (bundle.metadata.backbone, bundle.task.name) == (backbone, "multiclass")
    head = bundle.model.get_layer("head").get_config()
    assert (head["head"], head["attention"]) == (("mlp", "spatial") if flags else ("linear", "none"))
    capsys.readouterr()
    photo = root / "dent" / "00.png"
    assert predict_cli.main([str(photo), "--model", str(output), "--explain", str(tmp_path / "heat")]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  class ")]
    assert line.split()[1].rstrip(":") in ("dent", "good", "scratch")
    assert len(list((tmp_path / "heat").glob("*.png"))) == 1
    shown, table, gallery, message = DefectApp(Predictor(bundle)).analyse(str(photo))
    assert message.startswith("Class: ") and len(gallery) == 1 and table.count("DETECTED") == 1
