"""Labelling a whole folder: a CSV row per photo (unreadable ones with their reason), a re-run that finishes what a
killed one left, and never half a CSV; memory stays bounded (a batch at a time)."""

import csv
import shutil

import pytest

from defect_tf.apps import predict
from defect_tf.apps.cli import run
from defect_tf.errors import DefectTFError
from defect_tf.runtime.folder import PARTIAL_SUFFIX, label_folder
from defect_tf.runtime.select import open_inferencer

pytestmark = pytest.mark.integration


@pytest.fixture
def photos(exported_output, tmp_path):
    """A folder of 20 photos (5 in a sub-folder), a truncated one and a text file named like a photo."""
    _, data = exported_output
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for index, path in enumerate(sorted(data.iterdir())[:20]):
        shutil.copy(path, folder / ("sub" if index < 5 else ".") / path.name)
    good = sorted(data.iterdir())[0].read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    (folder / "notes.png").write_text("not a photo")
    return folder


def rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_a_folder_becomes_a_csv_row_per_photo_with_unreadable_ones_and_why(exported_output, photos, tmp_path, capsys):
    output, _ = exported_output
    csv_file = tmp_path / "predictions.csv"
    status = run(lambda: predict.main(["--data", str(photos), "--model", str(output), "--output", str(csv_file)]))
    assert status == 0
    found = rows(csv_file)
    assert len(found) == 22 and sum(row["status"] == "ok" for row in found) == 20
    unreadable = {row["image"].split("/")[-1]: row["error"] for row in found if row["status"] == "unreadable"}
    assert set(unreadable) == {"cut.png", "notes.png"} and "not an image" in unreadable["notes.png"]
    inferencer = open_inferencer(output)
    expected, _ = inferencer.predict([row["image"] for row in found if row["status"] == "ok"][:4])
    for row, prediction in zip([row for row in found if row["status"] == "ok"], expected):
        assert row["detected"] == ";".join(prediction.detected)
    printed = capsys.readouterr()
    assert "22 photos: 20 labelled now, 0 already in" in printed.out
    assert "labelling: 100% 22/22" in printed.err  # a log (not a terminal) gets progress as lines
    assert not (tmp_path / f"predictions.csv{PARTIAL_SUFFIX}").exists()


def test_a_killed_run_leaves_no_csv_and_the_next_finishes_the_rest(exported_output, photos, tmp_path, monkeypatch):
    output, _ = exported_output
    inferencer = open_inferencer(output)
    csv_file = tmp_path / "predictions.csv"
    batches = inferencer.predict_batches

    def killed_after_one_batch(paths, batch_size=8):
        for index, batch in enumerate(batches(paths, batch_size)):
            if index == 1:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(inferencer, "predict_batches", killed_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        label_folder(inferencer, photos, csv_file)
    partial = tmp_path / f"predictions.csv{PARTIAL_SUFFIX}"
    assert not csv_file.exists() and partial.exists()
    with open(partial, "a") as file:  # a kill in the middle of a row's write
        file.write("photos/half-written.png,ok,sc")
    monkeypatch.undo()
    counts = label_folder(inferencer, photos, csv_file)
    assert counts["skipped"] == 8 and counts["predicted"] + counts["unreadable"] == 14
    found = rows(csv_file)
    assert len(found) == 22 and len({row["image"] for row in found}) == 22
    assert not partial.exists()


def test_the_csv_may_not_lie_among_the_photos_nor_replace_a_file_of_yours_nor_mix_models(exported_output, photos,
                                                                                         tmp_path):
    output, _ = exported_output
    inferencer = open_inferencer(output)
    with pytest.raises(DefectTFError, match="lies inside the photos' folder"):
        label_folder(inferencer, photos, photos / "predictions.csv")
    yours = tmp_path / "yours.csv"
    yours.write_text("my own notes\n")
    with pytest.raises(DefectTFError, match="already holds yours.csv, which this tool did not write"):
        label_folder(inferencer, photos, yours)
    assert yours.read_text() == "my own notes\n"
    ours = tmp_path / "ours.csv"
    label_folder(inferencer, photos, ours)
    ours.write_text(ours.read_text().replace("p_scratch", "p_rust", 1))  # as another model's run left it
    with pytest.raises(DefectTFError, match="holds the predictions of another model"):
        label_folder(inferencer, photos, ours)
