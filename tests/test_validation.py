import cv2
import numpy as np
import pytest
from PIL import Image

from defect_tf.data.checks import attribute_warnings, check_data, unlisted_images, unreadable_images
from defect_tf.data.labels import NA, LabelTable


def bad_input_corpus(folder):
    """Images as they come from real folders: odd formats that must work, and broken files that must not."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype("uint8")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    cv2.imwrite(str(folder / "sixteen_bit.png"), (np.random.default_rng(1).random((30, 30, 3)) * 65535).astype("uint16"))
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb[:1, :1]).save(folder / "one_pixel.png")
    cv2.imwrite(str(folder / "good.jpg"), rgb)
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "zero_bytes.jpg").write_bytes(b"")
    (folder / "not_an_image.png").write_text("hello")
    (folder / "extra_unlisted.png").write_bytes((folder / "palette.png").read_bytes())
    readable = ["cmyk.jpg", "sixteen_bit.png", "palette.png", "one_pixel.png", "good.jpg"]
    broken = ["truncated.jpg", "zero_bytes.jpg", "not_an_image.png", "missing.jpg"]
    return readable, broken


def test_odd_formats_are_readable_and_broken_files_are_named_with_a_reason(tmp_path):
    readable, broken = bad_input_corpus(tmp_path)
    problems = unreadable_images([str(tmp_path / name) for name in readable + broken])
    assert sorted(problems) == sorted(str(tmp_path / name) for name in broken)
    assert "{{function_node" not in " ".join(problems.values())
    assert "No such file" in problems[str(tmp_path / "missing.jpg")] or "not found" in problems[
        str(tmp_path / "missing.jpg")].lower()


def test_unlisted_files_are_counted_not_failed(tmp_path):
    readable, broken = bad_input_corpus(tmp_path)
    assert unlisted_images(tmp_path, readable + broken) == ["extra_unlisted.png"]


def test_attributes_that_cannot_be_learned_are_warned_about():
    values = np.array([[1, 0, NA, 1], [0, 0, NA, 1]], np.float32)
    warnings = attribute_warnings(LabelTable(["ok", "never_pos", "never_known", "never_neg"], ["a", "b"], values))
    assert warnings == ["attribute 'never_pos' is never positive: it cannot be learned or calibrated",
                        "attribute 'never_known' is NA for every image: it cannot be learned or scored",
                        "attribute 'never_neg' is never negative: it cannot be learned or calibrated"]


def test_check_data_reports_everything_at_once(tmp_path):
    readable, broken = bad_input_corpus(tmp_path)
    table = LabelTable(["a"], readable + broken, np.array([[1], [0]] * 4 + [[1]], np.float32),
                       notes=("labels.txt:9: good.jpg is listed again with the same labels as line 6; using it once",))
    report = check_data(tmp_path, table)
    assert len(report.bad_images) == 4 and report.unlisted == ["extra_unlisted.png"]
    text = report.describe_bad_images()
    assert text.splitlines()[0] == "4 listed image(s) are missing or unreadable:"
    assert all(name in text for name in broken)
    assert "listed again" in report.describe_warnings() and "1 image file(s)" in report.describe_warnings()


def test_huge_images_are_refused_from_their_header_without_decoding(tmp_path, monkeypatch):
    import defect_tf.data.image_files as image_files

    monkeypatch.setattr(image_files, "MAX_IMAGE_PIXELS", 1000)  # a 40x50 image stands in for a 200-megapixel one
    readable, _ = bad_input_corpus(tmp_path)
    problems = unreadable_images([str(tmp_path / name) for name in readable])
    assert sorted(problems) == sorted(str(tmp_path / name) for name in ("cmyk.jpg", "good.jpg", "palette.png"))
    assert problems[str(tmp_path / "good.jpg")] == "50x40 is larger than 1000 pixels; downscale it first"


@pytest.mark.integration
def test_one_check_run_reports_ten_different_mistakes_with_file_and_line(tiny_demo, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root, table = tiny_demo
    images = tmp_path / "images"
    shutil.copytree(root / "images", images)
    first = table.images[0]
    (images / "zero.png").write_bytes(b"")                                                   # 1 zero bytes
    (images / "cut.png").write_bytes((images / first).read_bytes()[:200])                   # 2 truncated
    (images / "notes.png").write_text("not a picture")                                      # 3 not an image
    (images / "stray.png").write_bytes((images / first).read_bytes())                       # 4 not listed
    rows = [f"{name} {'1 0 0 1' if i % 2 else '0 1 0 NA'}" for i, name in enumerate(table.images)]  # lines 2-49
    rows += ["zero.png 1 0 0 0", "cut.png 0 1 0 0", "notes.png 0 0 0 1",                          # lines 50-52
             "gone.png 1 1 0 0",                                                            # 5 missing file
             "short_row.png 1 0",                                                           # 6 too few fields
             "bad_value.png 1 yes 0 0",                                                     # 7 bad value
             f"{table.images[1]} 1 0 0 1",                                                  # 8 listed twice, same
             f"{table.images[2]} 1 1 0 1"]                                                  # 9 listed twice, differs
    labels = tmp_path / "labels.txt"
    # 10: `crack` is never positive; and the file has a byte-order mark and Windows line ends (both fine)
    labels.write_text("\ufeffimage scratch dent crack stain\r\n" + "\r\n".join(rows) + "\r\n")
    result = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "train.py"), "--check",
                             "--data", str(images), "--labels", str(labels)], capture_output=True, text=True,
                            timeout=300)
    out = result.stdout
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for expected in [f"{images / 'zero.png'}:", f"{images / 'cut.png'}:", f"{images / 'notes.png'}:",
                     "1 image file(s) in the folder are not in the label file", f"{images / 'gone.png'}:",
                     f"{labels}:54: expected 5 fields", f"{labels}:55: values must be 1, 0 or NA (or N/A, NaN, -1); found dent='yes'",
                     f"{labels}:56: {table.images[1]} is listed again with the same labels as line 3",
                     f"{labels}:57: {table.images[2]} is listed again with different labels than line 4",
                     "attribute 'crack' is never positive"]:
        assert expected in out, expected


def test_paths_that_leave_the_data_folder_are_counted_as_a_warning(tmp_path):
    readable, _ = bad_input_corpus(tmp_path / "data")
    (tmp_path / "outside.png").write_bytes((tmp_path / "data" / "palette.png").read_bytes())
    images = ["good.jpg", "../outside.png", str(tmp_path / "data" / "palette.png")]
    report = check_data(tmp_path / "data", LabelTable(["a"], images, np.array([[1.0], [0.0], [1.0]])))
    assert report.bad_images == {}
    assert (f"warning: 2 image path(s) point outside the data folder (absolute or through ..), e.g. ../outside.png, "
            f"{tmp_path / 'data' / 'palette.png'}") in report.describe_warnings()


def test_a_data_folder_that_does_not_exist_is_one_error_not_every_image_missing(tmp_path):
    import pytest

    from defect_tf.errors import ImageError

    with pytest.raises(ImageError, match=r"^\S*nope: data folder not found$"):
        check_data(tmp_path / "nope", LabelTable(["a"], ["x.png", "y.png"], np.array([[1.0], [0.0]])))
