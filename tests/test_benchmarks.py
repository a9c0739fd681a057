"""The benchmark scripts' own logic, on tiny made-up data (the real data sets are never needed here)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import shared_split, shared_test_rows
from missing_labels import arm_labels, na_labels
from throughput import peak_memory_mb

from defect_tf.data.labels import NA, parse_labels
from defect_tf.data.splits import read_split

ROOT = Path(__file__).resolve().parents[1]


def fake_dataset(folder: Path, with_split: bool) -> Path:
    (folder / "images").mkdir(parents=True)
    names = [f"{i}.jpg" for i in range(8)]
    full = ["image a b"] + [f"{name} {i % 2} {(i // 2) % 2}" for i, name in enumerate(names)]
    with_na = list(full)
    with_na[2], with_na[5] = "1.jpg NA 0", "4.jpg 0 NA"
    (folder / "labels.txt").write_text("\n".join(full) + "\n")
    (folder / "labels_na.txt").write_text("\n".join(with_na) + "\n")
    if with_split:
        (folder / "split.txt").write_text("image split\n" + "".join(f"{n} {'test' if i >= 6 else 'train'}\n"
                                                                    for i, n in enumerate(names)))
    return folder


def test_the_four_arms_label_files(tmp_path):
    folder = fake_dataset(tmp_path / "data", with_split=False)
    assert arm_labels("full", folder, tmp_path) == folder / "labels.txt"
    assert arm_labels("masked", folder, tmp_path) == folder / "labels_na.txt"
    as_zero = parse_labels(arm_labels("na_as_0", folder, tmp_path))
    np.testing.assert_array_equal(as_zero.values[[1, 4]], [[0, 0], [0, 0]])  # was NA 0 and 0 NA
    dropped = parse_labels(arm_labels("drop_rows", folder, tmp_path))
    assert dropped.images == ["0.jpg", "2.jpg", "3.jpg", "5.jpg", "6.jpg", "7.jpg"]
    assert not (dropped.values == NA).any()


def test_the_full_budget_control_has_complete_rows_and_as_many_labels_as_the_na_file(tmp_path):
    folder = fake_dataset(tmp_path / "data", with_split=False)  # 16 cells, 2 NA: 14 known labels = 7 rows
    budget = parse_labels(arm_labels("full_budget", folder, tmp_path, seed=3))
    full = parse_labels(folder / "labels.txt")
    assert len(budget.images) == 7 and len(set(budget.images)) == 7
    for image, row in zip(budget.images, budget.values):
        np.testing.assert_array_equal(row, full.values[full.images.index(image)])
    assert parse_labels(arm_labels("full_budget", folder, tmp_path, seed=3)).images == budget.images


def test_a_larger_na_fraction_hides_every_cell_a_smaller_one_hides_and_keeps_the_rest(tmp_path):
    folder = fake_dataset(tmp_path / "data", with_split=False)
    full = parse_labels(folder / "labels.txt").values
    hidden = {f: parse_labels(na_labels(folder, tmp_path, f)).values == NA for f in (0.3, 0.7)}
    expected = {f: np.random.RandomState(0).rand(8, 2) < f for f in (0.3, 0.7)}  # the data sets' own rule
    for fraction in (0.3, 0.7):
        np.testing.assert_array_equal(hidden[fraction], expected[fraction])
        kept = parse_labels(na_labels(folder, tmp_path, fraction)).values[~hidden[fraction]]
        np.testing.assert_array_equal(kept, full[~hidden[fraction]])
    assert (hidden[0.7] | ~hidden[0.3]).all()


def test_every_arm_shares_one_complete_split_and_official_test_images_stay_test(tmp_path):
    folder = fake_dataset(tmp_path / "data", with_split=True)
    split = read_split(shared_split(folder, folder / "labels.txt", tmp_path, seed=0))
    assert sorted(split) == sorted(parse_labels(folder / "labels.txt").images)
    assert [split[f"{i}.jpg"] for i in (6, 7)] == ["test", "test"]
    assert set(split.values()) == {"train", "val", "test"}


def test_every_arm_is_scored_on_the_whole_shared_test_split_even_rows_it_dropped(tmp_path):
    folder = fake_dataset(tmp_path / "data", with_split=False)
    split_file = tmp_path / "split.txt"
    split_file.write_text("image split\n" + "".join(f"{i}.jpg {'test' if i in (1, 4, 7) else 'train'}\n"
                                                      for i in range(8)))
    dropped = parse_labels(arm_labels("drop_rows", folder, tmp_path))
    assert "1.jpg" not in dropped.images and "4.jpg" not in dropped.images  # the rows with NA
    scored = shared_test_rows(parse_labels(folder / "labels.txt"), split_file)
    assert scored.images == ["1.jpg", "4.jpg", "7.jpg"]
    np.testing.assert_array_equal(scored.values, [[1, 0], [0, 0], [1, 1]])


@pytest.mark.integration
@pytest.mark.parametrize("script, dataset, folder", [("missing_labels.py", "neu", "neu"),
                                                     ("ablations.py", "neu_xml", "neu"), ("anomaly.py", None, "anomaly"),
                                                     ("patchcore_size.py", None, "anomaly"),
                                                     ("patchcore_pixels.py", None, "anomaly"),
                                                     ("patchcore_head.py", None, "anomaly")])
def test_a_benchmark_says_clearly_when_its_data_is_absent(tmp_path, script, dataset, folder):
    chosen = ["--dataset", dataset] if dataset else []
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *chosen,
                             "--data-root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"benchmark data {folder!r} not found in {tmp_path / folder}" in result.stderr


@pytest.mark.integration
def test_peak_memory_is_the_childs_own_not_this_process(tmp_path):
    ballast = bytearray(300 * 1024 * 1024)  # this process is now 300 MB larger than the child will be
    ballast[::4096] = b"x" * len(ballast[::4096])
    _, peak = peak_memory_mb([sys.executable, "-c", "import time; x = bytearray(100 * 1024 * 1024); "
                                                    "x[::4096] = b'x' * len(x[::4096]); time.sleep(0.3)"])
    assert 100 <= peak < 250


def test_an_arm_that_fails_is_reported_in_the_table_not_fatal(tmp_path):
    from common import failures, train_and_score

    from defect_tf.train.config import TrainConfig

    folder = fake_dataset(tmp_path / "data", with_split=False)  # labels name images that do not exist
    config = TrainConfig(data=str(folder / "images"), labels=str(folder / "labels.txt"), weights="none",
                         backbone="small_cnn", output=str(tmp_path / "arm"))
    result = train_and_score(config, folder / "labels.txt", tmp_path / "arm.log")
    assert result["macro_f1"] is None and result["mean_ap"] is None and "0.jpg" in result["failed"]
    assert failures({"masked": result, "full": {"failed": None}}) == f"\n\nmasked: {result['failed']}"
    assert "error:" in (tmp_path / "arm.log").read_text()


def tiny_arm(tiny_demo, tmp_path, **changes):
    from dataclasses import replace

    from defect_tf.train.config import TrainConfig

    root, _ = tiny_demo
    split_file = shared_split(root, root / "labels.txt", tmp_path, seed=0)
    config = TrainConfig(data=str(root / "images"), labels=str(root / "labels.txt"), output=str(tmp_path / "arm"),
                         backbone="small_cnn", weights="none", image_size=32, batch_size=8, warmup_epochs=2,
                         finetune_epochs=1, patience=5, split_file=str(split_file))
    return replace(config, **changes)


@pytest.mark.integration
def test_running_a_benchmark_again_scores_finished_arms_without_training_them_again(tiny_demo, tmp_path):
    from common import train_and_score

    config = tiny_arm(tiny_demo, tmp_path)
    first = train_and_score(config, config.labels, tmp_path / "arm.log")
    log_after_first = (tmp_path / "arm.log").read_text()
    again = train_and_score(config, config.labels, tmp_path / "arm.log")
    assert again == first and first["epochs"] == 3
    assert (tmp_path / "arm.log").read_text() == log_after_first  # nothing trained
    history = json.loads((tmp_path / "arm" / "history.json").read_text())
    assert first["train_seconds"] == round(sum(record["seconds"] for record in history), 1) > 0


@pytest.mark.integration
def test_a_run_without_a_shared_split_is_scored_on_the_test_split_its_training_made(tiny_demo, tmp_path):
    from common import train_and_score

    from defect_tf.data.splits import read_split

    config = tiny_arm(tiny_demo, tmp_path, split_file=None)  # as the accuracy benchmark trains
    result = train_and_score(config, config.labels, tmp_path / "arm.log")
    own_split = read_split(tmp_path / "arm" / "split.txt")
    assert result["test_images"] == sum(part == "test" for part in own_split.values()) > 0


@pytest.mark.integration
def test_an_interrupted_arm_continues_from_its_checkpoint_and_other_settings_are_refused(tiny_demo, tmp_path,
                                                                                         monkeypatch):
    from common import train_and_score

    from defect_tf.train import trainer

    config = tiny_arm(tiny_demo, tmp_path)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # the machine stops the benchmark after the last epoch, before the bundle

    with monkeypatch.context() as patched:
        patched.setattr(trainer, "predict_probabilities", stopped)  # the calibration after the last epoch
        with pytest.raises(KeyboardInterrupt):
            train_and_score(config, config.labels, tmp_path / "arm.log")
    assert (tmp_path / "arm" / "checkpoint").is_dir() and not (tmp_path / "arm" / "bundle").exists()

    longer = train_and_score(tiny_arm(tiny_demo, tmp_path, warmup_epochs=5), config.labels, tmp_path / "arm.log")
    assert "interrupted run with other settings" in longer["failed"]

    result = train_and_score(config, config.labels, tmp_path / "arm.log")
    assert result["epochs"] == 3 and result["macro_f1"] is not None
    assert "continuing the interrupted run" in (tmp_path / "arm.log").read_text()
    assert not (tmp_path / "arm" / "checkpoint").exists()


def test_runs_that_differ_in_backbone_weights_pooling_rotation_or_cutout_are_saved_under_different_names():
    import argparse

    from common import add_comparison_options, comparison_config, comparison_name, shared_settings

    parser = argparse.ArgumentParser()
    add_comparison_options(parser)
    assert comparison_name(parser.parse_args([])) == ("64px_avg_8+4_seed0", "64 px, 8 + 4 epochs, seed 0")
    assert comparison_name(parser.parse_args(["--backbone", "small_cnn_hires", "--pooling", "max", "--no-cutout"])) == (
        "small_cnn_hires_64px_max_nocutout_8+4_seed0", "small_cnn_hires, 64 px, max pooling, no Cutout, 8 + 4 epochs, seed 0")
    assert comparison_name(parser.parse_args(["--rotation", "quarter"])) == (
        "64px_avg_quarter_8+4_seed0", "64 px, quarter turns, 8 + 4 epochs, seed 0")
    pretrained = parser.parse_args(["--backbone", "efficientnet_lite0", "--weights", "imagenet"])
    assert comparison_name(pretrained) == ("efficientnet_lite0_imagenet_64px_avg_8+4_seed0",
                                           "efficientnet_lite0, ImageNet weights, 64 px, 8 + 4 epochs, seed 0")
    assert comparison_config(pretrained, Path("neu"), Path("split.txt")).weights == "imagenet"
    assert shared_settings(pretrained).startswith("`efficientnet_lite0` from its ImageNet weights, 64 px")


def test_transfer_study_arms_and_few_shot_files(tmp_path):
    from transfer import FEWSHOT_EPOCHS, RECIPES, study_arms

    from defect_tf.train.config import TrainConfig

    names = [f"{c}_{i}.jpg" for c in "abc" for i in range(10)]
    (tmp_path / "labels.txt").write_text("image a b c\n" + "".join(
        f"{name} {int(name[0] == 'a')} {int(name[0] == 'b')} {int(name[0] == 'c')}\n" for name in names))
    (tmp_path / "split.txt").write_text("image split\n" + "".join(
        f"{name} {'test' if int(name[2]) >= 8 else 'val' if int(name[2]) == 7 else 'train'}\n" for name in names))
    base = TrainConfig(data=str(tmp_path), labels=str(tmp_path / "labels.txt"), split_file=str(tmp_path / "split.txt"))

    arms = study_arms("fewshot", base, list(RECIPES), [5], tmp_path)
    assert sorted(arms) == ["efficientnet_lite0, 5 per class", "small_cnn, 5 per class"]
    lite = arms["efficientnet_lite0, 5 per class"]
    assert (lite.backbone, lite.weights, lite.warmup_epochs, lite.finetune_epochs) == (
        "efficientnet_lite0", "imagenet", *FEWSHOT_EPOCHS)
    split = read_split(lite.split_file)
    assert sorted(image for image, part in split.items() if part == "test") == sorted(
        name for name in names if int(name[2]) >= 8)  # the shared test images, all of them
    for letter in "abc":  # 5 per class from train + val: 1 of them validates, 4 train
        chosen = [part for image, part in split.items() if image[0] == letter and part != "test"]
        assert sorted(chosen) == ["train"] * 4 + ["val"]
    assert sorted(parse_labels(lite.labels).images) == sorted(split)

    unfreeze = study_arms("unfreeze", base, [], [], tmp_path)
    assert {name: (arm.finetune_epochs, arm.unfreeze) for name, arm in unfreeze.items()} == {
        "warm-up only": (0, None), "top block": (15, 11), "top two stages": (15, 46), "all": (15, 10_000)}
    lite1 = study_arms("unfreeze", base, [], [], tmp_path, "efficientnet_lite1")  # the head, 5 + 1 blocks
    assert {name: (arm.backbone, arm.unfreeze) for name, arm in lite1.items()} == {
        "warm-up only": ("efficientnet_lite1", None), "top block": ("efficientnet_lite1", 11),
        "top two stages": ("efficientnet_lite1", 55), "all": ("efficientnet_lite1", 10_000)}
    assert {arm.backbone for arm in study_arms("accuracy", base, list(RECIPES), [], tmp_path).values()} == set(RECIPES)
    lite = study_arms("lite", base, [], [], tmp_path)
    assert {name: (arm.backbone, arm.weights, arm.warmup_epochs, arm.finetune_epochs) for name, arm in lite.items()} \
        == {name: (name, "imagenet", 5, 15) for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")}


def test_the_recipes_benchmark_builds_class_folders_of_links_and_a_few_shot_split(tmp_path):
    from recipes import arm_data

    names = [f"{c}_{i}.jpg" for c in "abc" for i in range(10)]
    neu = tmp_path / "neu"
    (neu / "images").mkdir(parents=True)
    for name in names:
        (neu / "images" / name).write_bytes(name.encode())
    (neu / "labels.txt").write_text("image a b c\n" + "".join(
        f"{name} {int(name[0] == 'a')} {int(name[0] == 'b')} {int(name[0] == 'c')}\n" for name in names))
    (neu / "split.txt").write_text("image split\n" + "".join(
        f"{name} {'test' if int(name[2]) >= 8 else 'train'}\n" for name in names))

    (tmp_path / "work").mkdir()
    folder, split_file = arm_data(neu, 5, tmp_path / "work", seed=0)
    split = read_split(split_file)
    assert sorted(image for image, part in split.items() if part == "test") == sorted(
        f"{n[0]}/{n}" for n in names if int(n[2]) >= 8)
    for letter in "abc":  # 5 of each class from the train part: one validates, four train
        assert sorted(part for image, part in split.items() if image[0] == letter and part != "test") == [
            "train"] * 4 + ["val"]
    linked = sorted(str(path.relative_to(folder)) for path in folder.rglob("*.jpg"))
    assert linked == sorted(split) and (folder / "a" / "a_9.jpg").read_bytes() == b"a_9.jpg"
    assert all(path.is_symlink() for path in folder.rglob("*.jpg"))  # NEU itself is never copied

    everything, split_file = arm_data(neu, None, tmp_path / "work", seed=0)
    assert len(read_split(split_file)) == 30 and len(list(everything.rglob("*.jpg"))) == 30


def test_the_anomaly_benchmark_takes_its_labelled_defects_out_of_the_test_split(tmp_path):
    from anomaly import LABELLED_PER_TYPE, read_rows, write_split

    folder = tmp_path / "anomaly"
    folder.mkdir()
    kinds = ["free"] * 30 + ["hole"] * 25 + ["crack"] * 25
    names = [f"{i:03d}.jpg" for i in range(len(kinds))]
    (folder / "types.txt").write_text("image type\n" + "".join(f"{n} {k}\n" for n, k in zip(names, kinds)))
    (folder / "split.txt").write_text("image split\n" + "".join(
        f"{n} {'train' if i < 20 else 'test'}\n" for i, n in enumerate(names)))
    path, test = write_split(folder, tmp_path, seed=0)
    parts, types = read_rows(path), read_rows(folder / "types.txt")
    for kind in ("hole", "crack"):
        labelled = [n for n in names if types[n] == kind and parts[n] != "test"]
        assert len(labelled) == LABELLED_PER_TYPE
        assert sum(parts[n] == "val" for n in labelled) == LABELLED_PER_TYPE // 5
    assert sum(parts[n] == "val" for n in names if types[n] == "free") == 2  # a tenth of the 20 intact train photos
    assert test == sorted(n for n in names if parts[n] == "test") and len(test) == 80 - 20 - 2 * LABELLED_PER_TYPE

    # the input-size sweep scores the localiser's validation photos: intact val and every labelled defect, no test
    from patchcore_size import validation_rows

    from defect_tf.anomaly.data import read_anomaly_set

    (folder / "labels.txt").write_text("image defect\n" + "".join(
        f"{n} {int(k != 'free')}\n" for n, k in zip(names, kinds)))
    anomaly_set = read_anomaly_set(str(folder), str(folder / "labels.txt"), str(path))
    chosen = [anomaly_set.images[row] for row in validation_rows(anomaly_set)]
    assert sorted(chosen) == sorted(n for n in names if parts[n] == "val" or (types[n] != "free" and parts[n] == "train"))
    assert len(chosen) == 2 + 2 * LABELLED_PER_TYPE and not set(chosen) & set(test)


def test_maps_of_several_sizes_are_averaged_pixel_by_pixel():
    from patchcore_pixels import averaged

    np.testing.assert_array_equal(averaged([[np.array([[0.0, 2.0]])], [np.array([[4.0, 2.0]])]])[0], [[2.0, 2.0]])


def test_fewer_masks_keeps_every_intact_photo_and_that_many_defects_of_each_type():
    from types import SimpleNamespace

    from patchcore_head import fewer

    photos = SimpleNamespace(images=list("abcdef"), defective=np.array([0, 0, 1, 1, 1, 1], bool),
                             types={"c": "hole", "d": "hole", "e": "hole", "f": "crack"})
    kept = fewer(photos, list(range(6)), 1, seed=0)
    assert kept[:2] == [0, 1] and 5 in kept and len(kept) == 4  # one hole of three, the one crack
    assert fewer(photos, list(range(6)), 1, seed=0) == kept and fewer(photos, list(range(6)), 5, seed=0) == list(range(6))


def test_a_recorded_command_reads_as_a_user_types_it():
    from common import DEFAULT_DATA_ROOT, as_a_user_types_it

    assert as_a_user_types_it(["--dataset", "neu", "--data-root", str(DEFAULT_DATA_ROOT), "--work", "/tmp/bench/x",
                               "--seed", "1"]) == ["--dataset", "neu", "--work", "runs/x", "--seed", "1"]


def test_the_few_shot_benchmark_gives_each_arm_its_recipe_and_each_draw_its_own_images(tmp_path):
    from fewshot import arm_config, draw_files

    from defect_tf.train.config import TrainConfig

    names = [f"{c}_{i}.jpg" for c in "abc" for i in range(10)]
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.txt").write_text("image a b c\n" + "".join(
        f"{name} {int(name[0] == 'a')} {int(name[0] == 'b')} {int(name[0] == 'c')}\n" for name in names))
    (tmp_path / "split.txt").write_text("image split\n" + "".join(
        f"{name} {'test' if int(name[2]) >= 8 else 'train'}\n" for name in names))
    draws = [draw_files(tmp_path, tmp_path / "labels.txt", "5", draw, tmp_path / f"d{draw}") for draw in (0, 1)]
    chosen = [{image for image, part in read_split(split).items() if part != "test"} for _, split in draws]
    assert len(chosen[0]) == len(chosen[1]) == 15 and chosen[0] != chosen[1]  # 5 per class, drawn per draw

    base = TrainConfig(data=str(tmp_path / "images"), backbone="efficientnet_lite0")
    labels, split = draws[0]
    settings = {arm: arm_config(base, arm, "5", labels, split, 0, tmp_path / arm) for arm in
                ("linear probe", "warm-up epochs", "LP-FT")}
    assert {arm: (c.linear_probe, c.warmup_epochs, c.finetune_epochs, c.patience) for arm, c in settings.items()} == {
        "linear probe": ("on", 0, 0, 10), "warm-up epochs": ("off", 30, 30, 10), "LP-FT": ("on", 0, 30, 10)}
    everything = arm_config(base, "warm-up epochs", "all", tmp_path / "labels.txt", split, 2, tmp_path / "all")
    assert (everything.warmup_epochs, everything.finetune_epochs, everything.patience, everything.seed) == (5, 15, 5, 2)


def test_the_anomaly_table_shows_the_image_auroc_ap_and_f1_with_their_intervals():
    from anomaly import table

    reports = {"patchcore": {"ms_per_photo": 247.0, "image_auroc": 0.948, "image_auroc_low": 0.93,
                             "image_auroc_high": 0.9649, "pixel_auroc": 0.963},
               "heatmap": {"ms_per_photo": 67.0, "image_auroc": 0.9, "image_auroc_low": float("nan"),
                           "image_auroc_high": float("nan")}}
    rows = table(reports, {"patchcore": "236 s", "heatmap": "259 s"}).splitlines()
    assert rows[2].startswith("| patchcore | 236 s | 247 | 0.948 (0.930-0.965) | - | - | 0.963 |")
    assert rows[3].startswith("| heatmap | 259 s | 67 | 0.900 | - | - | - |")  # no interval where it is unknown
    assert rows[-1] == "Image AUROC with its 95% interval (evaluate/metrics.py: roc_auc_interval)."
    reports["patchcore"] |= {"f1": 0.902, "f1_low": 0.875, "f1_high": 0.925, "image_ap": 0.97, "image_ap_low": 0.951,
                             "image_ap_high": 0.982}
    rows = table(reports, {"patchcore": "236 s", "heatmap": "259 s"}).splitlines()
    assert rows[2].startswith("| patchcore | 236 s | 247 | 0.948 (0.930-0.965) | 0.970 (0.951-0.982) | "
                              "0.902 (0.875-0.925) | 0.963 |")
    assert rows[-1].endswith("roc_auc_interval), image AP with its own (average_precision_intervals), F1 with its "
                             "own (f1_interval).")


def test_the_anomaly_per_type_table_gives_each_method_its_pixel_ap_beside_its_aurocs():
    from anomaly import per_type_table

    crack = {"defective": 37, "image_auroc": 0.898, "pixel_auroc": 0.973, "pixel_ap": 0.057, "iou": 0.022,
             "coverage": 0.391}
    older = {key: value for key, value in crack.items() if key != "pixel_ap"}  # a run from before the pixel AP
    rows = per_type_table({"patchcore": {"per_type": {"crack": crack}},
                           "heatmap": {"per_type": {"crack": older}}}).splitlines()
    assert rows[0] == ("| defect type | patchcore: image AUROC / pixel AUROC / pixel AP / IoU / coverage | heatmap: "
                       "image AUROC / pixel AUROC / pixel AP / IoU / coverage |")
    assert rows[2] == "| crack (37) | 0.898 / 0.973 / 0.057 / 0.022 / 0.391 | 0.898 / 0.973 / - / 0.022 / 0.391 |"


def test_the_bootstrap_the_auc_intervals_benchmark_compares_with_by_hand_and_against_scikit_learn():
    from auc_intervals import bootstrap_interval
    from sklearn.metrics import roc_auc_score

    # one positive (2) and two negatives (1, 3): a resample draws the negatives (1, 1) a quarter of the time
    # (AUC 1), (1, 3) or (3, 1) half of it (0.5), (3, 3) a quarter (0)
    assert bootstrap_interval(np.array([1, 0, 0]), np.array([2.0, 1.0, 3.0]), 4000, np.random.default_rng(0)) == \
        (0.0, 1.0)
    assert bootstrap_interval(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.1, 0.2]), 500,
                              np.random.default_rng(0)) == (1.0, 1.0)  # every resample of a perfect ranking is one
    # 60 images with ties: each resample's AUC is scikit-learn's on the images it drew
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(25, int), np.zeros(35, int)]
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)
    low, high = bootstrap_interval(labels, scores, 2000, np.random.default_rng(0))
    positive, negative = np.flatnonzero(labels), np.flatnonzero(labels == 0)
    resampled = [roc_auc_score(labels[drawn], scores[drawn]) for drawn in
                 (np.r_[rng.choice(positive, 25), rng.choice(negative, 35)] for _ in range(2000))]
    assert (low, high) == pytest.approx(tuple(np.quantile(resampled, [0.025, 0.975])), abs=0.02)
