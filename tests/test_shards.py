"""Prepared shards (`defect-tf prepare`, data/shards.py, data/shard_writer.py): written once with the split
train.py would choose, resumable after a kill without rewriting a finished shard, never read half-written, and
training from them gives the same model as training from the image folder."""

import json
import shutil

import keras
import numpy as np
import pytest

from defect_tf.apps import prepare
from defect_tf.data import shard_writer
from defect_tf.data.labels import parse_labels
from defect_tf.data.pipeline import decoded_images
from defect_tf.data.shard_writer import PARTIAL, plan_shards
from defect_tf.data.shards import MANIFEST_FILE, TABLE_FILE, open_shards, records_per_shard
from defect_tf.data.splits import read_split, stratified_split
from defect_tf.errors import DefectTFError

SIDE = 32
PER_SHARD = 10
SMALL_SHARDS = PER_SHARD * SIDE * SIDE * 3


@pytest.fixture
def demo(tiny_demo, tmp_path):
    """A copy of the tiny demo's 48 images and labels (tests change them)."""
    root, _ = tiny_demo
    shutil.copytree(root / "images", tmp_path / "images")
    shutil.copy(root / "labels.txt", tmp_path / "labels.txt")
    return tmp_path


def run_prepare(demo, *flags, shard_bytes=SMALL_SHARDS) -> dict:
    config = prepare.parse_args(["--data", str(demo / "images"), "--labels", str(demo / "labels.txt"),
                                 "--output", str(demo / "shards"), "--image-size", str(SIDE), *flags])
    from defect_tf.train.shard_preparation import prepare_shards

    return prepare_shards(config, log=lambda line: None, shard_bytes=shard_bytes)


def shard_files(folder):
    return sorted(path.name for path in folder.glob("*.tfrecord*"))


def test_the_plan_deals_each_split_in_table_order_over_groups_of_shards_read_together():
    split = np.array(["train", "test", "train", "val", "train", "train", "test", "train", "val", "train", "train",
                      "test"])
    assert records_per_shard(8, 3 * 8 * 8 * 3) == 3
    plan = plan_shards(split, 8, 3 * 8 * 8 * 3, interleave=2)
    # train rows 0 2 4 5 7 9 10: a group of 2 shards x 3 rows (0 2 4 5 7 9) dealt in turns, then the rest (10)
    assert [(shard["file"], shard["rows"]) for shard in plan] == [
        ("train-00000-of-00003.tfrecord", [0, 4, 7]), ("train-00001-of-00003.tfrecord", [2, 5, 9]),
        ("train-00002-of-00003.tfrecord", [10]), ("val-00000-of-00001.tfrecord", [3, 8]),
        ("test-00000-of-00001.tfrecord", [1, 6, 11])]


def test_prepared_shards_hold_the_split_train_would_choose_and_the_pixels_it_would_decode(demo):
    manifest = run_prepare(demo, shard_bytes=3 * SIDE * SIDE * 3)  # more shards than are read at once
    table = parse_labels(demo / "labels.txt")
    split = stratified_split(table.values, seed=0)  # train.py's split for --seed 0 over the same rows
    shards = open_shards(demo / "shards")
    assert shards.table.images == table.images and np.array_equal(shards.split, split)
    counts = {name: int(np.sum(split == name)) for name in ("train", "val", "test")}
    assert {name: manifest["counts"][name]["images"] for name in counts} == counts
    assert manifest["counts"]["train"]["positive"] == {
        name: int(np.sum(table.values[split == "train", j] == 1)) for j, name in enumerate(table.attributes)}
    assert manifest["finished"] and manifest["image_size"] == SIDE
    assert counts == {"train": 34, "val": 7, "test": 7}
    # 34 rows, 3 per shard, 4 shards read together: two groups of 4 x 3, then 10 dealt over 4 shards
    assert [shard["records"] for shard in manifest["shards"] if shard["split"] == "train"] == [3] * 10 + [2, 2]
    assert manifest["interleave"] == 4
    # one split's images, in table order: the shards give them in that order, pixel for pixel as decoding does
    train = [str(demo / "images" / image) for image, part in zip(table.images, split) if part == "train"]
    from_shards = list(shards.images([shards.path(image) for image, part in zip(table.images, split)
                                      if part == "train"]).as_numpy_iterator())
    assert [int(position) for _, position in from_shards] == list(range(len(train)))
    decoded = list(decoded_images(train, SIDE).as_numpy_iterator())
    assert all(np.array_equal(a, b) for (a, _), b in zip(from_shards, decoded))


def test_a_killed_prepare_keeps_its_finished_shards_never_reads_a_half_written_one_and_finishes(demo, monkeypatch):
    write = shard_writer._write_shard
    calls = []

    def killed_in_the_third_shard(path, paths, rows, image_size, bar):
        calls.append(path.name)
        if len(calls) == 3:
            path.with_name(path.name + PARTIAL).write_bytes(b"half a shard")
            raise KeyboardInterrupt
        write(path, paths, rows, image_size, bar)

    monkeypatch.setattr(shard_writer, "_write_shard", killed_in_the_third_shard)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(demo)
    folder = demo / "shards"
    assert shard_files(folder) == sorted([*calls[:2], calls[2] + PARTIAL])
    with pytest.raises(DefectTFError, match="did not finish writing these shards; run the same command again"):
        open_shards(folder)
    finished = {name: (folder / name).stat() for name in calls[:2]}

    monkeypatch.setattr(shard_writer, "_write_shard", write)
    manifest = run_prepare(demo)
    assert manifest["finished"] and not list(folder.glob("*" + PARTIAL))
    for name, before in finished.items():  # never rewritten
        after = (folder / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    shards = open_shards(folder)
    every = [shards.path(image) for image in shards.table.images]
    assert sorted(int(position) for _, position in shards.images(every).as_numpy_iterator()) == list(range(48))


def test_a_finished_folder_is_left_alone_and_other_data_is_refused_there(demo):
    run_prepare(demo)
    def stamps():
        return {path.name: path.stat().st_mtime_ns for path in (demo / "shards").iterdir() if path.name != ".lock"
                and not path.name.endswith(".lock")}

    before = stamps()
    run_prepare(demo)
    assert stamps() == before
    with pytest.raises(DefectTFError, match=r"holds shards prepared from other images, labels or settings; a shard "
                                            r"is never rewritten, so prepare into a new --output folder"):
        run_prepare(demo, "--seed", "1")


def test_damaged_shards_are_refused_naming_every_problem(demo):
    run_prepare(demo)
    folder = demo / "shards"
    first, test = sorted(folder.glob("train-*.tfrecord"))[0], sorted(folder.glob("test-*.tfrecord"))[0]
    with open(first, "ab") as shard:
        shard.write(b"x")
    test.unlink()
    with pytest.raises(DefectTFError) as error:
        open_shards(folder)
    message = str(error.value)
    assert "\n" not in message and "damaged shards" in message
    assert f"{first.name} holds {first.stat().st_size:,} bytes, not the {first.stat().st_size - 1:,}" in message
    assert f"{test.name} is missing" in message
    table = json.loads((folder / TABLE_FILE).read_text())
    table["values"][0][0] = 1 - table["values"][0][0]
    (folder / TABLE_FILE).write_text(json.dumps(table))
    with pytest.raises(DefectTFError, match="table.json is not the table the manifest names"):
        open_shards(folder)


def test_bad_images_are_found_at_prepare_time(demo):
    table = parse_labels(demo / "labels.txt")
    (demo / "images" / table.images[4]).write_bytes(b"not an image")
    with pytest.raises(DefectTFError, match=table.images[4]):
        run_prepare(demo)
    assert not (demo / "shards" / MANIFEST_FILE).exists()
    manifest = run_prepare(demo, "--on-bad-image", "skip")
    assert manifest["images"] == 47 and table.images[4] in (demo / "shards" / "skipped_images.txt").read_text()
    assert table.images[4] not in open_shards(demo / "shards").table.images


def test_class_folders_keep_their_layout_so_the_task_is_chosen_as_from_the_folder(demo):
    from defect_tf.data.sources import read_class_folders
    from defect_tf.tasks import task_labels

    table = parse_labels(demo / "labels.txt")
    photos = demo / "photos"
    for image, row in zip(table.images, table.values):
        kind = "defective" if row.max() == 1 else "good"
        (photos / kind).mkdir(parents=True, exist_ok=True)
        shutil.copy(demo / "images" / image, photos / kind / image)
    config = prepare.parse_args(["--data", str(photos), "--output", str(demo / "shards"), "--image-size", str(SIDE),
                                 "--task", "binary"])
    from defect_tf.train.shard_preparation import prepare_shards

    prepare_shards(config, log=lambda line: None)
    for task_name in (None, "binary"):
        from_folder = task_labels(read_class_folders(photos), task_name)
        from_shards = task_labels(open_shards(demo / "shards").label_source(), task_name)
        assert from_shards[0].name == from_folder[0].name == (task_name or "multiclass")
        assert from_shards[1].table.attributes == from_folder[1].table.attributes
        assert from_shards[1].table.images == from_folder[1].table.images
        assert np.array_equal(from_shards[1].table.values, from_folder[1].table.values)


def test_training_refuses_flags_the_shards_fix(demo, capsys):
    from defect_tf.apps import train
    from defect_tf.apps.cli import run

    run_prepare(demo)
    assert "shards: 100% 48/48" in capsys.readouterr().err  # preparing reports its progress, as a line in a log
    code = run(lambda: train.main(["--data", str(demo / "shards"), "--labels", str(demo / "labels.txt"), "--output",
                       str(demo / "out"), "--image-size", "64", "--backbone", "small_cnn", "--weights", "none"]))
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert "--labels: the shards in" in error and "hold their labels; leave it out" in error
    assert "--image-size 64: the shards in" in error and f"pass --image-size {SIDE}" in error


@pytest.mark.integration
def test_training_from_shards_gives_the_model_training_from_the_folder_gives(demo, capsys):
    from defect_tf.apps import train

    run_prepare(demo)
    settings = ["--image-size", "32", "--backbone", "small_cnn", "--weights", "none", "--batch-size", "8",
                "--warmup-epochs", "1", "--finetune-epochs", "2"]
    assert train.main(["--data", str(demo / "images"), "--labels", str(demo / "labels.txt"),
                       "--output", str(demo / "from_folder"), *settings]) == 0
    assert train.main(["--data", str(demo / "shards"), "--output", str(demo / "from_shards"), *settings]) == 0
    printed = capsys.readouterr().out
    assert f"split: train 34, val 7, test 7 (as prepared in {demo / 'shards'}" in printed
    assert read_split(demo / "from_folder" / "split.txt") == read_split(demo / "from_shards" / "split.txt")
    folder_model, shard_model = (keras.models.load_model(demo / run / "bundle" / "model.keras", compile=False)
                                 for run in ("from_folder", "from_shards"))
    for a, b in zip(folder_model.get_weights(), shard_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    reports = [json.loads((demo / run / "metrics.json").read_text()) for run in ("from_folder", "from_shards")]
    assert reports[0] == reports[1]
    # evaluate.py scores the bundle on its test split from the shards it was trained on
    from defect_tf.apps import evaluate

    assert evaluate.main(["--model", str(demo / "from_shards"), "--output", str(demo / "scored")]) == 0
    assert json.loads((demo / "scored" / "metrics.json").read_text()) == reports[1]
