"""Export to every format with parity proved: a trained model to ONNX, LiteRT (float32, dynamic and full int8) and
SavedModel; every backbone of the registry and every task to the formats a runtime without TensorFlow runs; the
exported model then answers through inference.py without TensorFlow."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from programs import run_counting_imports

from defect_tf.bundle.layout import read_metadata
from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import load_bundle, save_bundle
from defect_tf.errors import DefectTFError
from defect_tf.export.exporter import export_bundle
from defect_tf.export.formats import FORMATS
from defect_tf.export.parity import MAX_DIFFERENCE
from defect_tf.models.classifier import build_classifier
from defect_tf.models.registry import BACKBONES
from defect_tf.runtime.select import open_inferencer

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration  # every test here converts a model


def quiet(*_args):
    pass


@pytest.fixture(scope="module")
def trained_copy(trained_output, tmp_path_factory):
    """A copy of the tiny trained run's output folder, for exports to write into."""
    import shutil

    output, config, _ = trained_output
    copy = tmp_path_factory.mktemp("exported") / "outputs"
    shutil.copytree(output, copy)
    return copy, config


@pytest.mark.parametrize("format_name, quantization", [("onnx", "none"), ("litert", "none"), ("saved_model", "none"),
                                                       ("litert", "dynamic"), ("litert", "full")])
def test_a_trained_model_exports_to_every_format_and_matches_keras(trained_copy, format_name, quantization):
    output, _ = trained_copy
    record = export_bundle(output, format_name, quantization, accept_drop=quantization != "none", log=quiet)
    parity = record.parity
    assert parity["images"] == len(load_bundle(output).metadata.split["test"]) and parity["source"] == "test"
    if quantization == "none":
        assert parity["max_abs_difference"] <= MAX_DIFFERENCE and parity["decisions_changed"] == 0
    else:
        assert parity["max_abs_difference"] < 0.5 and "macro_f1_export" in parity
    metadata = read_metadata(output / "bundle")
    assert metadata.exports[format_name]["quantization"] == quantization
    assert metadata.checksums[FORMATS[format_name].file]  # the exported file is checksummed like model.keras
    load_bundle(output)  # the Keras model still loads: the bundle is intact


def test_int8_refuses_a_format_that_exports_float32_only(trained_copy):
    output, _ = trained_copy
    with pytest.raises(DefectTFError, match="--int8 full is for --format litert; --format onnx is exported in float32"):
        export_bundle(output, "onnx", "full", log=quiet)


def untrained_bundle(folder: Path, backbone: str, task: str, tiny_demo) -> Path:
    """A bundle of an untrained (random) model whose test split is real photos: parity needs no training. An
    untrained model's probabilities crowd around one value, so each threshold goes in the widest gap between them
    (at 0.5, a difference of 1e-7 could flip a decision)."""
    from defect_tf.data.images import read_image
    from defect_tf.decisions import sigmoid

    root, table = tiny_demo
    outputs = {"multilabel": 4, "multiclass": 3, "binary": 1}[task]
    model = build_classifier(backbone, outputs, 32, None)
    names = [f"c{i}" for i in range(outputs)] if task != "multilabel" else table.attributes
    images = np.stack([read_image(str(root / "images" / name), 32) for name in table.images[16:]])
    probabilities = np.sort(sigmoid(model.predict_on_batch(images)), axis=0)
    gaps = np.argmax(np.diff(probabilities, axis=0), axis=0)
    widest = [(probabilities[g, j] + probabilities[g + 1, j]) / 2 for j, g in enumerate(gaps)]
    thresholds = [] if task == "multiclass" else [float(t) for t in widest]
    save_bundle(folder, model, BundleMetadata(names, 32, thresholds, task=task, backbone=backbone,
                                              data_dir=str(root / "images"),
                                              split={"train": table.images[:16], "test": table.images[16:]}))
    return folder


@pytest.mark.xdist_group("large_conversions")  # 4-5 GB each for the largest: two at once would not fit in 24 GiB
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_exports_to_each_runtime_without_tensorflow_with_parity(backbone, tiny_demo, tmp_path):
    root, table = tiny_demo
    output = untrained_bundle(tmp_path, backbone, "multilabel", tiny_demo)
    photos = [str(root / "images" / name) for name in table.images[16:]]
    keras, _ = open_inferencer(output, "keras").predict(photos)
    thresholds = read_metadata(output / "bundle").decision_thresholds()
    for format_name in ("onnx", "litert"):
        record = export_bundle(output, format_name, log=quiet)
        assert record.parity["max_abs_difference"] <= MAX_DIFFERENCE, (format_name, record.parity)
        assert record.parity["images"] == 32
        exported, _ = open_inferencer(output, format_name).predict(photos)
        for ours, theirs in zip(exported, keras):
            p, q = np.array(list(theirs.probabilities.values())), np.array(list(ours.probabilities.values()))
            assert np.abs(p - q).max() <= MAX_DIFFERENCE
            flipped = (p >= thresholds) != (q >= thresholds)  # an untrained model's outputs all but coincide: only
            assert (np.abs(p - thresholds)[flipped] <= MAX_DIFFERENCE).all()  # those on a threshold's edge flip


@pytest.mark.parametrize("task", ["multilabel", "multiclass", "binary"])
def test_every_task_exports_probabilities_and_decides_as_keras(task, tiny_demo, tmp_path):
    root, table = tiny_demo
    output = untrained_bundle(tmp_path, "small_cnn", task, tiny_demo)
    photos = [str(root / "images" / name) for name in table.images[16:24]]
    keras, _ = open_inferencer(output, "keras").predict(photos)
    for format_name in ("onnx", "litert", "saved_model"):
        export_bundle(output, format_name, log=quiet)
        if format_name == "saved_model":
            continue  # TensorFlow's own format: its parity is in the record, no runtime of ours runs it
        exported, _ = open_inferencer(output, format_name).predict(photos)
        for ours, theirs in zip(exported, keras):
            assert ours.detected == theirs.detected
            np.testing.assert_allclose(list(ours.probabilities.values()), list(theirs.probabilities.values()),
                                       atol=1e-5)
            if task == "multiclass":
                assert sum(ours.probabilities.values()) == pytest.approx(1.0, abs=1e-5) and len(ours.detected) == 1
    records = read_metadata(output / "bundle").exports
    assert set(records) == {"onnx", "litert", "saved_model"}
    assert "tf2onnx" not in sys.modules  # it converts in a process of its own, which returns its memory when it ends
    assert all(record["parity"]["max_abs_difference"] <= MAX_DIFFERENCE for record in records.values())


def test_a_changed_export_file_is_refused_by_its_checksum(trained_copy):
    from defect_tf.errors import BundleError

    output, _ = trained_copy
    export_bundle(output, "onnx", log=quiet)
    model_file = output / "bundle" / "model.onnx"
    data = model_file.read_bytes()
    model_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(BundleError, match="model.onnx is not the model bundle.json was saved with"):
        open_inferencer(output, "onnx")
    model_file.write_bytes(data)


def test_inference_with_an_exported_model_imports_no_tensorflow(trained_copy, tiny_demo):
    output, _ = trained_copy
    root, table = tiny_demo
    export_bundle(output, "onnx", log=quiet)
    photo = str(root / "images" / table.images[20])
    status, heavy, printed, stderr = run_counting_imports("predict", [photo, "--model", str(output), "--json"])
    assert (status, heavy) == (0, []), stderr[-2000:]
    document = json.loads(printed)
    assert document["runtime"] == "ONNX Runtime" and document["model_file"].endswith("model.onnx")
    keras = open_inferencer(output, "keras").predict([photo])[0][0]
    assert document["predictions"][0]["detected"] == keras.detected


def test_a_model_file_given_as_model_names_its_own_runtime(trained_copy):
    from defect_tf.errors import BundleError

    output, _ = trained_copy
    export_bundle(output, "onnx", log=quiet)
    bundle = output / "bundle"
    assert open_inferencer(bundle / "model.onnx").runtime == "ONNX Runtime"
    assert open_inferencer(bundle / "model.keras").runtime == "Keras"
    assert open_inferencer(output).runtime == "ONNX Runtime"  # a folder: its exported model first
    with pytest.raises(BundleError, match="bundle.json: not a model this tool runs"):
        open_inferencer(bundle / "bundle.json")
    with pytest.raises(BundleError, match="model.onnx is run by onnx, not --runtime litert"):
        open_inferencer(bundle / "model.onnx", "litert")


def test_on_the_demos_test_split_the_exported_model_without_tensorflow_decides_as_keras(demo_run, tmp_path):
    """The demo's pretrained Lite0 bundle: ONNX Runtime and LiteRT with the runtime's own pre-processing (Pillow)
    against Keras with training's (TensorFlow), photo by photo over the whole test split."""
    import shutil

    from defect_tf.bundle.store import load_bundle
    from defect_tf.inference.predictor import Predictor

    root, output, _, _ = demo_run
    copy = tmp_path / "outputs"
    shutil.copytree(output, copy)
    bundle = load_bundle(copy)
    photos = [str(root / "images" / name) for name in bundle.metadata.split["test"]]
    keras, _ = Predictor(bundle).predict(photos)
    for format_name in ("onnx", "litert"):
        export_bundle(copy, format_name, log=quiet)
        exported, errors = open_inferencer(copy, format_name).predict(photos)
        assert errors == [] and len(exported) == len(keras) == len(photos)
        differences = [abs(ours.probabilities[name] - theirs.probabilities[name])
                       for ours, theirs in zip(exported, keras) for name in bundle.attributes]
        assert max(differences) < 1e-3, format_name  # pre-processing within 1e-3 of a grey level, conversion 1e-5
        assert [p.detected for p in exported] == [p.detected for p in keras], format_name
