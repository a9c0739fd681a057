import numpy as np
import pytest

from defect_tf.data.labels import NA
from defect_tf.data.splits import (
    MIN_VALIDATION_IMAGES,
    read_split,
    split_from_file,
    stratified_split,
    train_on_small_validation,
    write_split,
)
from defect_tf.errors import DefectTFError


def test_split_is_deterministic_and_close_to_the_fractions():
    rng = np.random.default_rng(0)
    values = (rng.random((200, 4)) < 0.3).astype(np.float32)
    first = stratified_split(values, seed=5)
    assert np.array_equal(first, stratified_split(values, seed=5))
    assert not np.array_equal(first, stratified_split(values, seed=6))
    counts = {name: int((first == name).sum()) for name in ("train", "val", "test")}
    assert abs(counts["train"] - 140) <= 4 and abs(counts["val"] - 30) <= 4 and abs(counts["test"] - 30) <= 4


def test_every_split_gets_a_rare_attributes_positives():
    values = np.zeros((100, 2), np.float32)
    values[:50, 0] = 1
    values[[7, 31, 77], 1] = 1  # only three positives of the rare attribute
    values[90:, 1] = NA
    for seed in range(5):
        split = stratified_split(values, seed=seed)
        assert sorted(split[[7, 31, 77]]) == ["test", "train", "val"]


def test_split_file_round_trip(tmp_path):
    write_split(tmp_path / "split.txt", ["a b.png", "c.png"], ["train", "test"])
    assert read_split(tmp_path / "split.txt") == {"a b.png": "train", "c.png": "test"}


def test_a_split_file_with_all_three_parts_is_used_as_it_is(tmp_path):
    images = [f"{i}.png" for i in range(6)]
    names = ["train", "train", "val", "test", "train", "test"]
    write_split(tmp_path / "split.txt", images[::-1], names[::-1])  # any row order
    values = np.zeros((6, 2), np.float32)
    assert list(split_from_file(tmp_path / "split.txt", images, values)) == names


def test_an_official_train_test_split_gets_val_carved_out_of_train(tmp_path):
    rng = np.random.default_rng(0)
    images = [f"{i}.png" for i in range(200)]
    official = ["train"] * 170 + ["test"] * 30
    (tmp_path / "split.txt").write_text("image\tsplit\n" + "".join(f"{i}\t{s}\n" for i, s in zip(images, official)))
    values = (rng.random((200, 3)) < 0.3).astype(np.float32)
    split = split_from_file(tmp_path / "split.txt", images, values, (0.7, 0.15, 0.15), seed=0)
    assert list(split[170:]) == ["test"] * 30  # the official test images stay test
    assert sorted(set(split[:170])) == ["train", "val"]
    assert (split == "val").sum() == pytest.approx(170 * 0.15 / 0.85, abs=2)


def test_split_file_problems_are_clear_errors(tmp_path):
    (tmp_path / "split.txt").write_text("image split\na.png train\nb.png holdout\nc.png\n\nd.png test\n")
    with pytest.raises(DefectTFError) as error:
        split_from_file(tmp_path / "split.txt", ["a.png"], np.zeros((1, 1)))
    assert str(error.value).splitlines() == [
        f"{tmp_path / 'split.txt'}:3: expected `image train|val|test`, found 'b.png holdout'",
        f"{tmp_path / 'split.txt'}:4: expected `image train|val|test`, found 'c.png'"]
    (tmp_path / "split.txt").write_text("image split\na.png train\n")
    with pytest.raises(DefectTFError, match="leaves out 1 labelled image.s., e.g. c.png"):
        split_from_file(tmp_path / "split.txt", ["a.png", "c.png"], np.zeros((2, 1)))
    with pytest.raises(DefectTFError, match="missing.txt: split file not found"):
        split_from_file(tmp_path / "missing.txt", ["a.png"], np.zeros((1, 1)))
    (tmp_path / "split.txt").write_text("image split\na.png train\n./a.png test\n")
    with pytest.raises(DefectTFError, match=r"split.txt:3: a.png is listed again in another split \(train\)"):
        split_from_file(tmp_path / "split.txt", ["a.png"], np.zeros((1, 1)))


def test_split_file_paths_are_normalised_like_label_paths(tmp_path):
    (tmp_path / "split.txt").write_text("image split\n./a.png train\nsub/../b.png val\nc.png test\n")
    assert list(split_from_file(tmp_path / "split.txt", ["a.png", "b.png", "c.png"], np.zeros((3, 1)))) == [
        "train", "val", "test"]


@pytest.mark.parametrize("validation, trained_on", [(0, False), (1, True), (19, True), (20, False), (21, False)])
def test_a_validation_split_under_twenty_images_is_trained_on_and_test_images_stay(validation, trained_on):
    split = np.array(["train"] * 30 + ["val"] * validation + ["test"] * 7, dtype=object)
    result = train_on_small_validation(split)
    assert MIN_VALIDATION_IMAGES == 20
    assert list(result) == ["train"] * 30 + ["train" if trained_on else "val"] * validation + ["test"] * 7
    assert list(split[30:30 + validation]) == ["val"] * validation  # the caller's array is left as it was
