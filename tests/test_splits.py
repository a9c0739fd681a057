import numpy as np

from defect_tf.labels import NA
from defect_tf.splits import read_split, stratified_split, write_split


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
