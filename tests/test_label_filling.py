"""Labels filled in where they are missing (`train.py --fill-na ROUNDS`, train/label_filling.py)."""

import numpy as np
import pytest

from defect_tf.data.labels import NA, LabelTable, format_labels, known_mask, parse_labels
from defect_tf.data.splits import read_split
from defect_tf.errors import DefectTFError
from defect_tf.train.config import TrainConfig
from defect_tf.train.label_filling import (
    confident_limits,
    describe_rounds,
    fill_confident,
    fill_rows,
    missing_cells,
)


def test_confident_limits_are_the_widest_tails_right_often_enough_on_known_labels():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.7], [0.3, 0.05], [0.2, 0.6]])
    labels = np.array([[1, 0], [1, NA], [0, 1], [0, 0], [0, 1]], dtype=float)
    low, high = confident_limits(probabilities, labels, precision=0.98)
    # column 0, highest first: 0.9 (1), 0.8 (1), 0.6 (0) -> high 0.8; lowest first: 0.2, 0.3, 0.6 (0), 0.8 (1) -> 0.6
    # column 1 (row 1 unknown): 0.7 (1), 0.6 (1), 0.1 (0) -> high 0.6; 0.05 (0), 0.1 (0), 0.6 (1) -> low 0.1
    np.testing.assert_allclose(low, [0.6, 0.1])
    np.testing.assert_allclose(high, [0.8, 0.6])
    low, high = confident_limits(probabilities, labels, precision=0.65)
    # column 0, highest first, right 1, 1, 2/3, 2/4, 2/5 -> high 0.6; lowest first 1, 1, 1, 3/4, 3/5 -> low 0.8
    assert (low[0], high[0]) == (0.8, 0.6)
    nothing = confident_limits(np.array([[0.9], [0.1]]), np.array([[NA], [NA]]), precision=0.98)
    assert nothing == (np.array([-np.inf]), np.array([np.inf]))


def test_fill_confident_fills_only_na_cells_beyond_the_limits():
    values = np.array([[NA, 1, NA], [0, NA, NA]], dtype=float)
    probabilities = np.array([[0.95, 0.01, 0.5], [0.99, 0.02, 0.9]])
    filled = fill_confident(values, probabilities, low=np.array([0.1, 0.1, 0.1]), high=np.array([0.9, 0.9, 0.9]))
    np.testing.assert_array_equal(filled, [[1, 1, NA], [0, 0, 1]])  # known cells stay, 0.5 stays NA
    np.testing.assert_array_equal(values[0], [NA, 1, NA])  # the input is not changed


def test_a_later_round_decides_the_users_na_cells_anew_and_counts_them():
    values = np.array([[1, 0, 1], [0, 1, 0]], dtype=float)  # a previous round filled cells (0, 0) and (1, 2) in
    missing = np.array([[True, False, False], [False, False, True]])
    probabilities = np.array([[0.5, 0.99, 0.01], [0.5, 0.5, 0.05]])
    filled, counts = fill_rows(values, missing, probabilities, low=np.full(3, 0.1), high=np.full(3, 0.9))
    np.testing.assert_array_equal(filled, [[NA, 0, 1], [0, 1, 0]])  # unsure now: NA again; sure: 0; known: kept
    assert counts == {"na_cells": 2, "filled_1": 0, "filled_0": 1}


def test_the_users_na_cells_are_found_by_image_in_the_file_the_rounds_started_from(tmp_path):
    original = LabelTable(["a", "b"], ["x.png", "y.png", "z.png"], np.array([[NA, 1], [0, NA], [1, 1]]))
    path = tmp_path / "labels.txt"
    path.write_text(format_labels(original), encoding="utf-8")
    filled = LabelTable(["a", "b"], ["z.png", "x.png"], np.array([[1, 1], [0, 1]], dtype=float))  # other order
    np.testing.assert_array_equal(missing_cells(filled, path), [[False, False], [True, False]])
    np.testing.assert_array_equal(missing_cells(original, None), [[True, False], [False, True], [False, False]])


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_fill_na_is_refused_for_a_task_without_na_cells(task, tmp_path):
    with pytest.raises(DefectTFError, match=f"--fill-na fills in NA labels of --task multilabel, and this run is "
                                            f"{task}"):
        TrainConfig(data=str(tmp_path), task=task, fill_na=1).validate()


@pytest.mark.integration
def test_fill_na_trains_again_on_the_training_images_na_cells_filled_in_and_nothing_else(tiny_demo, tmp_path):
    from defect_tf.bundle.store import load_bundle
    from defect_tf.train.trainer import train

    root, table = tiny_demo
    output = tmp_path / "outputs"
    lines = []
    config = TrainConfig(data=str(root / "images"), labels=str(root / "labels.txt"), output=str(output),
                         backbone="small_cnn", weights="none", image_size=32, batch_size=8, warmup_epochs=1,
                         finetune_epochs=1, fill_na=2)
    train(config, log=lines.append)
    filling = [line for line in lines if line.startswith("filling in labels:")]
    assert len(filling) == 2 and "2 filling rounds left" in filling[0] and "1 filling round left" in filling[1]
    assert sum(line.startswith("saved model bundle") for line in lines) == 3  # the first run and two rounds
    assert lines[-1].startswith("--fill-na: validation mean AP ") and lines[-1].count(",") >= 2  # 3 runs' scores
    filled = parse_labels(output / "labels_filled.txt")
    assert filled.images == table.images and filled.attributes == table.attributes
    split = read_split(output / "split.txt")
    train_rows = np.array([split[image] == "train" for image in table.images])
    known = known_mask(table.values)
    np.testing.assert_array_equal(filled.values[known], table.values[known])  # no known label changes
    np.testing.assert_array_equal(filled.values[~train_rows], table.values[~train_rows])  # val, test: the truth
    assert known_mask(filled.values[train_rows]).sum() > known[train_rows].sum()  # some NA cells filled in
    bundle = load_bundle(output)
    assert bundle.metadata.labels_file == str((output / "labels_filled.txt").resolve())
    assert bundle.metadata.split == {part: [image for image in table.images if split[image] == part]
                                     for part in ("train", "val", "test")}  # every round: the first run's split


@pytest.mark.integration
def test_a_filling_round_interrupted_resumes_on_its_own_labels_and_finishes_the_rounds(tiny_demo, tmp_path,
                                                                                      monkeypatch, capsys):
    from defect_tf.apps import train as train_cli
    from defect_tf.apps.cli import run
    from defect_tf.bundle.store import load_bundle
    from defect_tf.train.checkpoints import EpochCheckpoint

    root, _ = tiny_demo
    output = tmp_path / "out"
    save = EpochCheckpoint.on_epoch_end

    def save_then_interrupt_in_a_filling_round(self, epoch, logs=None):
        save(self, epoch, logs)
        if self.config["labels"].endswith("labels_filled.txt"):
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", save_then_interrupt_in_a_filling_round)
    command = ["--data", str(root / "images"), "--labels", str(root / "labels.txt"), "--output", str(output),
               "--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
               "--warmup-epochs", "1", "--finetune-epochs", "1", "--fill-na", "2"]
    assert run(lambda: train_cli.main(command)) == 130
    assert "Continue from it with: python train.py --resume" in capsys.readouterr().err
    monkeypatch.undo()
    filled_before = (output / "labels_filled.txt").read_bytes()
    assert run(lambda: train_cli.main(["--resume", "--output", str(output)])) == 0
    printed = capsys.readouterr().out
    assert printed.count("filling in labels:") == 1 and "1 filling round left" in printed  # the round left
    assert (output / "labels_filled.txt").read_bytes() != filled_before  # filled again by the resumed round's model
    settings = load_bundle(output).metadata.settings
    assert (settings["fill_na"], settings["na_labels"]) == (0, str((root / "labels.txt").resolve()))


def test_interrupted_between_rounds_says_the_bundle_is_complete_and_the_rounds_left_were_not_trained(tmp_path):
    from defect_tf.train.progress import RunProgress

    progress = RunProgress(stage="filling", bundle=tmp_path / "bundle")
    assert progress.interrupted(tmp_path) == (
        f"interrupted while filling in NA labels for another round: the bundle in {tmp_path / 'bundle'} is complete "
        "and scored, and the rounds left were not trained; run the same command again to train every round")
    progress.start_round()
    assert progress.interrupted(tmp_path).startswith("interrupted while preparing the run")


def test_after_the_rounds_the_validation_scores_are_printed_and_a_loss_against_no_filling_is_a_warning():
    assert describe_rounds([0.8, 0.85, 0.9]) == ("--fill-na: validation mean AP 0.800, 0.850, 0.900 (the run before "
                                                 "filling, then each round)")
    worse = describe_rounds([0.861, 0.854, 0.857])
    assert worse.startswith("--fill-na: validation mean AP 0.861, 0.854, 0.857 (the run before filling, then each "
                            "round); warning: below the run without --fill-na")
    assert describe_rounds([float("nan")]) == "--fill-na: validation mean AP n/a (the last round)"  # resumed
