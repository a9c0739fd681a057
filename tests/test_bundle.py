import json

import keras
import numpy as np
import pytest

from defect_tf.bundle.layout import find_bundle
from defect_tf.bundle.metadata import FORMAT, BundleMetadata
from defect_tf.bundle.store import load_bundle, save_bundle
from defect_tf.errors import BundleError
from defect_tf.models.classifier import build_classifier


def small_model():
    return build_classifier("small_cnn", 2, 32, None)


def test_round_trip_gives_the_same_predictions(tmp_path):
    model = build_classifier("efficientnet_b0", 2, 32, None)  # the default backbone, saved and loaded for real
    path = save_bundle(tmp_path, model, BundleMetadata(["a", "b"], 32, [0.4, 0.6]))
    bundle = load_bundle(tmp_path)
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(bundle.model.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    assert bundle.path == path and bundle.attributes == ["a", "b"] and bundle.image_size == 32
    assert json.loads((path / "bundle.json").read_text())["format"] == FORMAT


def test_saving_again_replaces_the_bundle_and_leaves_no_temporary_folders(tmp_path):
    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.5, 0.5]))
    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.1, 0.2]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    np.testing.assert_allclose(load_bundle(tmp_path).thresholds, [0.1, 0.2])


def test_a_half_written_bundle_is_never_loaded(tmp_path):
    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.3]))
    staging = tmp_path / ".bundle.new-x1"  # a crash while writing the next bundle leaves this behind
    staging.mkdir()
    (staging / "model.keras").write_bytes(b"partial")
    np.testing.assert_allclose(load_bundle(tmp_path).thresholds, [0.3, 0.3])
    (tmp_path / "bundle").rename(tmp_path / ".bundle.old-x2")  # a crash between the two renames
    np.testing.assert_allclose(load_bundle(tmp_path).thresholds, [0.3, 0.3])


def test_a_corrupt_model_file_is_named_as_corrupt_not_missing(tmp_path):
    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.3]))
    (tmp_path / "bundle" / "model.keras").write_bytes(b"PK\x03\x04 but then nothing")
    with pytest.raises(BundleError, match="model.keras: not a Keras model file \\(corrupt or truncated\\)"):
        load_bundle(tmp_path)
    (tmp_path / "bundle" / "bundle.json").write_text('{"format": "defect_tf.bundle/1", "attributes": ["a"]}')
    with pytest.raises(BundleError, match="incomplete bundle metadata \\(no image_size, thresholds\\)"):
        load_bundle(tmp_path)


def test_a_full_disk_while_saving_keeps_the_previous_bundle_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    from defect_tf.io.files import DiskFullError

    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.3]))

    def no_space(self, path, *args, **kwargs):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", no_space)
    with pytest.raises(DiskFullError, match=r"^disk full while writing .*bundle; the previous bundle is intact"):
        save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.1, 0.1]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    np.testing.assert_allclose(load_bundle(tmp_path).thresholds, [0.3, 0.3])


def test_missing_or_foreign_bundles_are_clear_errors(tmp_path):
    with pytest.raises(BundleError, match="no model bundle in"):
        find_bundle(tmp_path)
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "model.keras").write_bytes(b"x")
    (tmp_path / "bundle" / "bundle.json").write_text('{"format": "something-else"}')
    with pytest.raises(BundleError, match=f"not a {FORMAT} bundle"):
        load_bundle(tmp_path)


def test_bundle_model_has_no_optimizer_state(tmp_path):
    model = small_model()
    model.compile(optimizer="adam", loss="mse")
    save_bundle(tmp_path, model, BundleMetadata(["a", "b"], 32, [0.5, 0.5]))
    loaded = keras.saving.load_model(tmp_path / "bundle" / "model.keras", safe_mode=True)
    assert getattr(loaded, "optimizer", None) is None


def test_a_bundle_for_other_attributes_or_image_size_is_a_clear_error(tmp_path):
    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.5, 0.5]))
    assert load_bundle(tmp_path, attributes=["a", "b"], image_size=32).attributes == ["a", "b"]
    with pytest.raises(BundleError, match=r"predicts \['a', 'b'\], not the expected \['b', 'a'\]"):
        load_bundle(tmp_path, attributes=["b", "a"])
    with pytest.raises(BundleError, match="takes 32 px images, not the expected 64 px"):
        load_bundle(tmp_path, image_size=64)


def test_a_model_file_that_does_not_match_its_metadata_is_refused(tmp_path):
    save_bundle(tmp_path, build_classifier("small_cnn", 3, 48, None),
                BundleMetadata(["a", "b"], 32, [0.5, 0.5]))
    with pytest.raises(BundleError, match="do not belong together: the model has 3 outputs but the metadata names 2 "
                                          "attributes; the model takes 48x48 images but the metadata says 32 px"):
        load_bundle(tmp_path)


def test_bundles_load_in_safe_mode_and_never_run_code_from_the_file(tmp_path):
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: x[:, 0, 0, :2])(inputs)  # a Lambda is Python code stored in the file
    save_bundle(tmp_path, keras.Model(inputs, outputs), BundleMetadata(["a", "b"], 32, [0.5, 0.5]))
    with pytest.raises(BundleError, match="cannot load the model.*safe_mode"):
        load_bundle(tmp_path)


def test_metadata_is_one_typed_record_that_round_trips_and_migrates_old_formats(monkeypatch):
    from defect_tf.bundle import metadata as metadata_module
    from defect_tf.bundle.metadata import BundleMetadata

    record = BundleMetadata(["a", "b"], 64, [0.2, 0.7], backbone="small_cnn", split={"test": ["x.png"]})
    assert BundleMetadata.from_json(record.to_json(), "bundle.json") == record
    assert BundleMetadata.from_json({**record.to_json(), "added_later": 1}, "bundle.json") == record  # newer keys

    def from_version_0(old: dict) -> dict:  # a made-up older format that called the thresholds "cuts"
        return {**{k: v for k, v in old.items() if k != "cuts"}, "thresholds": old["cuts"], "format": FORMAT}

    monkeypatch.setitem(metadata_module.MIGRATIONS, "defect_tf.bundle/0", from_version_0)
    old = {"format": "defect_tf.bundle/0", "attributes": ["a"], "image_size": 32, "cuts": [0.4]}
    migrated = BundleMetadata.from_json(old, "bundle.json")
    assert (migrated.thresholds, migrated.format, migrated.untrained) == ([0.4], FORMAT, [])


def test_a_bundle_from_before_tasks_loads_as_the_multilabel_model_it_is(tmp_path):
    path = save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.6]))
    saved = json.loads((path / "bundle.json").read_text())
    del saved["task"]
    (path / "bundle.json").write_text(json.dumps({**saved, "format": "defect_tf.bundle/1"}))
    bundle = load_bundle(tmp_path)
    assert bundle.task.name == "multilabel" and bundle.metadata.format == FORMAT
    np.testing.assert_allclose(bundle.thresholds, [0.3, 0.6])


def test_a_multiclass_bundle_has_no_thresholds_and_an_unknown_task_is_a_clear_error(tmp_path):
    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [], task="multiclass"))
    bundle = load_bundle(tmp_path)
    assert bundle.task.name == "multiclass" and np.isnan(bundle.thresholds).all()
    saved = json.loads((bundle.path / "bundle.json").read_text())
    (bundle.path / "bundle.json").write_text(json.dumps({**saved, "task": "segmentation"}))
    with pytest.raises(BundleError, match="the model's task 'segmentation' is not one this version knows"):
        load_bundle(tmp_path)


def test_a_model_file_copied_in_from_another_run_is_refused_by_its_checksum(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_bundle(tmp_path / "a", small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.3]))
    save_bundle(tmp_path / "b", small_model(), BundleMetadata(["a", "b"], 32, [0.6, 0.6]))  # same outputs, other weights
    (tmp_path / "a" / "bundle" / "model.keras").write_bytes((tmp_path / "b" / "bundle" / "model.keras").read_bytes())
    with pytest.raises(BundleError, match="model.keras is not the model bundle.json was saved with \\(its SHA-256 "
                                          "differs\\): it was replaced or damaged"):
        load_bundle(tmp_path / "a")
    load_bundle(tmp_path / "b")


def test_a_bundle_from_before_checksums_still_loads(tmp_path):
    path = save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.6]))
    saved = json.loads((path / "bundle.json").read_text())
    del saved["checksums"], saved["seen_digests"]
    (path / "bundle.json").write_text(json.dumps({**saved, "format": "defect_tf.bundle/2"}))
    bundle = load_bundle(tmp_path)
    assert bundle.metadata.format == FORMAT and bundle.metadata.checksums == {}


@pytest.mark.parametrize("change, problem", [
    ({"thresholds": [0.5, float("nan")]}, "thresholds must be probabilities from 0 to 1, not nan"),
    ({"thresholds": [1.5, -0.1]}, "thresholds must be probabilities from 0 to 1, not 1.5, -0.1"),
    ({"thresholds": ["0.5", True]}, "thresholds must be probabilities from 0 to 1, not 0.5, True"),
    ({"thresholds": 0.5}, "thresholds must be a list"),
    ({"attributes": ["a", "a"]}, "attribute names repeat"),
    ({"attributes": []}, "attributes must be a list of names"),
    ({"image_size": 0}, "image_size must be a whole number from 16 to 4096, not 0"),
    ({"image_size": "32"}, "image_size must be a whole number from 16 to 4096, not 32"),
    ({"untrained": "a"}, "untrained must be a list of attribute names"),
])
def test_a_hand_edited_bundle_json_is_one_line_saying_what_cannot_be_used(tmp_path, change, problem):
    path = save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.6]))
    saved = json.loads((path / "bundle.json").read_text())
    (path / "bundle.json").write_text(json.dumps({**saved, **change}))  # NaN is written as JSON's NaN
    with pytest.raises(BundleError) as error:
        load_bundle(tmp_path)
    assert f"bundle metadata that cannot be used: {problem}" in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_a_bundle_is_readable_by_another_account_as_the_umask_says(tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        path = save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.6]))
    finally:
        os.umask(previous)
    assert oct(path.stat().st_mode & 0o777) == "0o755"
    assert {oct(child.stat().st_mode & 0o777) for child in path.iterdir()} == {"0o644"}


@pytest.mark.integration
def test_a_bundle_loads_in_a_fresh_process_that_imports_only_the_store(tmp_path):
    """The head's layer class is registered by the store itself (a script that loaded a bundle first failed)."""
    import subprocess
    import sys

    save_bundle(tmp_path, small_model(), BundleMetadata(["a", "b"], 32, [0.3, 0.6]))
    code = f"from defect_tf.bundle.store import load_bundle\nprint(load_bundle({str(tmp_path)!r}).attributes)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "['a', 'b']"
