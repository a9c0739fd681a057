"""The tool deletes or replaces only what it wrote, never writes among the user's images, and one run at a time."""

import shutil
import subprocess
import sys
import time

import pytest

from defect_tf.io import output_folder
from defect_tf.io.output_folder import OutputFolderError, check_no_overlap, claim
from defect_tf.train.config import TrainConfig
from defect_tf.train.trainer import train


def test_a_new_folder_is_claimed_and_claiming_again_is_allowed(tmp_path):
    folder = claim(tmp_path / "out", ["split.txt", "bundle"])
    (folder / "split.txt").write_text("ours")
    claim(folder, ["split.txt", "bundle"])
    assert output_folder.claimed_names(folder) == {"split.txt", "bundle"}


def test_files_the_tool_did_not_write_are_never_replaced(tmp_path):
    (tmp_path / "split.txt").write_text("the user's own split")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("unrelated, and not in the way")
    with pytest.raises(OutputFolderError, match=r"already holds metrics.json, split.txt, which this tool did not "
                                                r"write; it would replace them, so it stops"):
        claim(tmp_path, ["split.txt", "metrics.json", "bundle"])
    assert (tmp_path / "split.txt").read_text() == "the user's own split"
    claim(tmp_path, ["bundle"])  # nothing of the user's in the way


def test_an_output_folder_written_before_manifests_is_still_recognised(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "bundle.json").write_text('{"format": "defect_tf.bundle/1"}')
    (tmp_path / "split.txt").write_text("image split\n")
    (tmp_path / "notes.txt").write_text("the user's")
    assert output_folder.claimed_names(tmp_path) == {"bundle", "split.txt", "notes.txt"}  # its bundle says so
    claim(tmp_path, ["bundle", "split.txt"])  # no OutputFolderError: everything in the way is the tool's
    assert (tmp_path / "split.txt").read_text() == "image split\n"
    (tmp_path / "bundle" / "bundle.json").write_text('{"format": "something-else"}')
    with pytest.raises(OutputFolderError, match="already holds split.txt"):
        claim(tmp_path, ["split.txt", "metrics.json"])


@pytest.mark.parametrize("output", ["data", "data/outputs", "."])
def test_an_output_folder_overlapping_the_data_folder_is_refused(tmp_path, output):
    (tmp_path / "data").mkdir()
    with pytest.raises(OutputFolderError, match="overlaps the data folder"):
        check_no_overlap(tmp_path / output, tmp_path / "data")
    check_no_overlap(tmp_path / "outputs", tmp_path / "data")


def hold_lock(folder):
    """Another process that holds `folder`'s lock until killed; returns once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; from defect_tf.io import output_folder\n"
                               f"with output_folder.locked({str(folder)!r}):\n print('locked', flush=True)\n"
                               " time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.integration
def test_a_folder_locked_by_another_process_is_refused_in_one_line(tmp_path):
    holder = hold_lock(tmp_path)
    try:
        with pytest.raises(OutputFolderError, match=rf"^another run is using {tmp_path} \(process {holder.pid}\); "
                                                    "wait for it to finish or choose another --output$"):
            with output_folder.locked(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 10
    while True:  # the lock goes away with the process that held it
        try:
            with output_folder.locked(tmp_path):
                break
        except OutputFolderError:
            assert time.time() < deadline
            time.sleep(0.1)


def copy_of_demo(tiny_demo, tmp_path):
    root, _ = tiny_demo
    shutil.copytree(root / "images", tmp_path / "data")
    return tmp_path / "data", root / "labels.txt"


def config(data, labels, output, **settings):
    return TrainConfig(data=str(data), labels=str(labels), output=str(output), backbone="small_cnn", weights="none",
                       image_size=32, batch_size=8, warmup_epochs=1, finetune_epochs=1, **settings)


def test_training_into_the_data_folder_deletes_nothing_of_the_users(tiny_demo, tmp_path):
    data, labels = copy_of_demo(tiny_demo, tmp_path)
    (data / "checkpoint").mkdir()
    shutil.copy(data / "surface_0000.png", data / "checkpoint" / "keep_me.png")
    before = sorted(path.relative_to(data) for path in data.rglob("*"))
    for output in (data, data / "runs"):
        with pytest.raises(OutputFolderError, match="overlaps the data folder"):
            train(config(data, labels, output), log=lambda *_: None)
    assert sorted(path.relative_to(data) for path in data.rglob("*")) == before


def test_a_users_bundle_folder_and_split_file_in_the_output_folder_are_left_alone(tiny_demo, tmp_path):
    data, labels = copy_of_demo(tiny_demo, tmp_path)
    output = tmp_path / "mine"
    (output / "bundle").mkdir(parents=True)
    shutil.copy(data / "surface_0001.png", output / "bundle" / "my_photo.png")
    (output / "split.txt").write_text("my own notes\n")
    with pytest.raises(OutputFolderError, match="already holds bundle, split.txt, which this tool did not write"):
        train(config(data, labels, output, on_bad_image="skip"), log=lambda *_: None)
    assert (output / "bundle" / "my_photo.png").is_file() and (output / "split.txt").read_text() == "my own notes\n"


@pytest.mark.integration
def test_a_second_training_into_a_busy_folder_stops_at_once(tiny_demo, tmp_path):
    data, labels = copy_of_demo(tiny_demo, tmp_path)
    output = tmp_path / "out"
    holder = hold_lock(output)
    try:
        with pytest.raises(OutputFolderError, match="another run is using"):
            train(config(data, labels, output), log=lambda *_: None)
    finally:
        holder.kill()
        holder.wait()
    assert [path.name for path in output.iterdir()] == [".defect_tf.lock"]  # nothing written, nothing claimed
