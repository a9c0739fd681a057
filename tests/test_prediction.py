import json
import subprocess
import sys
from pathlib import Path

import pytest

from defect_tf.bundle.store import load_bundle
from defect_tf.data.images import read_image
from defect_tf.errors import ImageError
from defect_tf.inference.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "inference.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_predictor_applies_the_calibrated_thresholds(trained_output, tiny_demo):
    output, _, _ = trained_output
    root, table = tiny_demo
    bundle = load_bundle(output)
    photo = root / "images" / table.images[0]
    probabilities = Predictor(bundle).predict([photo])[0][0].probabilities
    # Thresholds just under the first two attributes' probabilities and just over the last two: both branches.
    values = [probabilities[name] for name in bundle.attributes]
    bundle.metadata.thresholds = [values[0] - 1e-4, values[1] - 1e-4, values[2] + 1e-4, values[3] + 1e-4]
    predictions, errors = Predictor(bundle).predict([photo])
    assert errors == [] and list(predictions[0].probabilities) == bundle.attributes
    assert predictions[0].detected == bundle.attributes[:2]


def test_batch_prediction_matches_one_by_one(trained_output, tiny_demo):
    output, _, _ = trained_output
    root, table = tiny_demo
    predictor = Predictor(load_bundle(output))
    paths = [root / "images" / name for name in table.images[:4]]
    together, _ = predictor.predict(paths)
    alone = [predictor.predict([path])[0][0] for path in paths]
    for a, b in zip(together, alone):
        assert a.probabilities == pytest.approx(b.probabilities, abs=2e-4)


def test_unreadable_files_are_image_errors(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    for path in (tmp_path / "empty.jpg", tmp_path / "text.png", tmp_path / "missing.png", tmp_path):
        with pytest.raises(ImageError, match="cannot read image"):
            read_image(str(path), 32)


def test_cli_prints_detections_and_json(trained_output, tiny_demo):
    output, _, _ = trained_output
    root, table = tiny_demo
    image = root / "images" / table.images[0]
    text = run_cli(image, "--model", output)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"runtime: Keras ({output / 'bundle' / 'model.keras'})"  # no exported model: Keras answers
    assert lines[1] == str(image)
    assert lines[2] == "  no defect detected" or all(":" in line for line in lines[2:])
    as_json = run_cli(image, root / "images" / table.images[1], "--model", output, "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)  # stdout holds the JSON document and nothing else
    assert [p["image"] for p in document["predictions"]] == [str(image), str(root / "images" / table.images[1])]
    assert set(document["predictions"][0]["probabilities"]) == {"scratch", "dent", "crack", "stain"}
    assert document["errors"] == []


def test_cli_names_a_bad_image_and_exits_2(trained_output, tiny_demo, tmp_path):
    output, _, _ = trained_output
    root, table = tiny_demo
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    result = run_cli(root / "images" / table.images[0], bad, "--model", output)
    assert result.returncode == 2
    assert result.stdout.splitlines()[1] == str(root / "images" / table.images[0])  # the good one is still predicted
    assert f"error: {bad}: cannot read image" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_cli_without_a_bundle_says_how_to_get_one(tmp_path):
    result = run_cli(tmp_path / "x.png", "--model", tmp_path)
    assert result.returncode == 2 and "no model bundle in" in result.stderr and "Traceback" not in result.stderr


def test_explain_writes_one_overlay_per_detected_attribute_at_the_photo_resolution(trained_output, tiny_demo,
                                                                                     tmp_path):
    import cv2

    output, _, _ = trained_output
    root, table = tiny_demo
    predictions, _ = Predictor(load_bundle(output)).predict([root / "images" / name for name in table.images])
    detected = next(p for p in predictions if p.detected)
    result = run_cli(detected.image, "--model", output, "--explain", tmp_path / "heatmaps")
    assert result.returncode == 0, result.stderr
    expected = [tmp_path / "heatmaps" / f"{Path(detected.image).stem}_{name}.png" for name in detected.detected]
    assert sorted(p for p in (tmp_path / "heatmaps").iterdir() if not p.name.startswith(".")) == sorted(expected)
    for path in expected:
        assert f"  heatmap: {path}" in result.stdout.splitlines()
        assert cv2.imread(str(path)).shape == (48, 48, 3)  # the photo's own size, not the model's 32 px


def test_overlay_names_are_unique_and_safe_for_any_file_system():
    from defect_tf.inference.predictor import Prediction, overlay_names

    predictions = [Prediction("a/x.png", {}, ["scratch", "a/b"]), Prediction("b/x.png", {}, ["scratch"]),
                   Prediction("c/x-2.png", {}, ["a_b"]), Prediction("d/y.png", {}, ["a/b", "a_b"]),
                   Prediction("e/z.png", {}, [])]
    assert overlay_names(predictions) == {
        "a/x.png": {"scratch": "x_scratch.png", "a/b": "x_a_b.png"},
        "b/x.png": {"scratch": "x-2_scratch.png"},
        "c/x-2.png": {"a_b": "x-2-2_a_b.png"},
        "d/y.png": {"a/b": "y_a_b.png", "a_b": "y_a_b-2.png"},
        "e/z.png": {},
    }


def test_two_photos_with_one_name_get_two_heatmaps(trained_output, tiny_demo, tmp_path):
    import shutil

    output, _, _ = trained_output
    root, table = tiny_demo
    predictions, _ = Predictor(load_bundle(output)).predict([root / "images" / name for name in table.images])
    detected = next(p for p in predictions if p.detected)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(detected.image, tmp_path / folder / "x.png")
    result = run_cli(tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--model", output, "--explain",
                     tmp_path / "heatmaps")
    assert result.returncode == 0, result.stderr
    printed = [line.split("heatmap: ")[1] for line in result.stdout.splitlines() if "heatmap: " in line]
    assert len(printed) == 2 * len(detected.detected) == len(set(printed))
    assert all(Path(path).is_file() for path in printed)


def test_heatmaps_that_cannot_be_written_are_an_error_not_a_printed_path(trained_output, tiny_demo, tmp_path,
                                                                          monkeypatch):
    import cv2

    from defect_tf.errors import DefectTFError

    output, _, _ = trained_output
    root, table = tiny_demo
    predictor = Predictor(load_bundle(output))
    predictions, _ = predictor.predict([root / "images" / name for name in table.images])
    detected = [next(p for p in predictions if p.detected)]
    (tmp_path / "a_file").write_text("x")
    result = run_cli(detected[0].image, "--model", output, "--explain", tmp_path / "a_file" / "heatmaps")
    assert result.returncode == 2 and "heatmap:" not in result.stdout and "Traceback" not in result.stderr
    assert "cannot create the folder" in result.stderr or "is a file" in result.stderr
    monkeypatch.setattr(cv2, "imwrite", lambda *args: False)  # e.g. a full disk or an unsupported path
    with pytest.raises(DefectTFError, match="could not write"):
        predictor.write_explanations(detected, tmp_path / "heatmaps")
    assert [p.name for p in (tmp_path / "heatmaps").iterdir() if not p.name.startswith(".")] == []
