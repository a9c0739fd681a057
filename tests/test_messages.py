"""Messages that point the right way: no advice to use a flag the command lacks, defaults that do what the help says,
flags that would be silently ignored named, JSON errors for scripts, a warning before a page is opened to the
network, and evaluation of copies of training images called optimistic."""

import json
import shutil

import numpy as np
import pytest

from defect_tf.apps import evaluate, predict, train, web
from defect_tf.apps.cli import run
from defect_tf.apps.evaluate import for_this_model
from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import Bundle
from defect_tf.errors import LabelError
from defect_tf.evaluate.evaluation import seen_in_training, split_table


def call(main, argv, capsys) -> tuple[int, str, str]:
    try:
        status = run(lambda: main(argv))
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_resume_refuses_flags_it_would_ignore_and_names_them(tmp_path, capsys):
    status, _, stderr = call(train.main, ["--resume", "--output", str(tmp_path), "--lr", "0.01", "--backbone",
                                          "small_cnn"], capsys)
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "--resume continues the interrupted run with its own settings, so --backbone, --lr would be ignored" in stderr


def test_check_says_which_flags_it_does_not_read(tiny_demo, capsys):
    root, _ = tiny_demo
    status, out, _ = call(train.main, ["--data", str(root / "images"), "--labels", str(root / "labels.txt"),
                                       "--check", "--lr", "0.5", "--image-size", "64"], capsys)
    assert status == 0
    assert out.splitlines()[0] == ("note: --check reads only --data, --labels, --task, --positive; ignored: "
                                   "--image-size, --lr")


@pytest.mark.parametrize("problem, task, expected", [
    ("--task multiclass: 2 image(s) have more than one class, e.g. a.png; give each one class, or use --task "
     "multilabel", "multiclass", "this multiclass model: 2 image(s) have more than one class, e.g. a.png; give each "
                                 "one class"),
    ("--task binary needs exactly one attribute, the defect to detect (...), but the labels have 2: a, b; use --task "
     "multilabel or multiclass", "binary", "this binary model needs exactly one attribute, the defect to detect (...), "
                                           "but the labels have 2: a, b"),
])
def test_evaluation_errors_do_not_advise_a_task_flag_it_does_not_have(problem, task, expected):
    assert for_this_model(problem, task) == expected


def test_a_bundle_without_a_test_split_says_so_and_what_to_score_instead(untrained_output):
    from defect_tf.bundle.store import load_bundle
    from defect_tf.data.labels import LabelTable

    bundle = load_bundle(untrained_output)
    bundle.metadata.split = {"train": ["a.png"], "val": ["b.png"], "test": []}
    table = LabelTable(["a"], ["a.png"], np.ones((1, 1), np.float32))
    with pytest.raises(LabelError) as error:
        split_table(bundle, table, "test")
    assert str(error.value) == ("the model has no test split (its run had too few images to hold one out); score it "
                                "on other labelled images with --data DIR --labels FILE, or choose --split train or "
                                "val or all")


def test_evaluate_with_data_but_no_labels_uses_the_models_own_label_file(untrained_output, tiny_demo, tmp_path,
                                                                        capsys):
    root, _ = tiny_demo
    copy = tmp_path / "moved_images"
    shutil.copytree(root / "images", copy)
    status, out, stderr = call(evaluate.main, ["--model", str(untrained_output), "--data", str(copy), "--output",
                                               str(tmp_path / "scores")], capsys)
    assert status == 0, stderr
    assert out.startswith(f"all images of {root / 'labels.txt'}, multilabel model")


def test_copies_of_training_images_are_recognised_by_their_content():
    metadata = BundleMetadata(["a"], 32, [0.5], data_dir="/data", split={"train": ["x.png"], "val": [], "test": []},
                              seen_digests=["00aa", "00bb"])
    bundle = Bundle(None, metadata, None)
    seen = seen_in_training(bundle, "/elsewhere", ["copy.png", "new.png", "renamed.png"],
                            {"/elsewhere/copy.png": "00aa", "/elsewhere/new.png": "ffff", "/elsewhere/renamed.png": "00bb"})
    assert seen == ["copy.png", "renamed.png"]
    assert seen_in_training(bundle, "/data", ["x.png"]) == ["x.png"]  # the same file, by its path


@pytest.mark.integration
def test_evaluating_a_byte_identical_copy_of_the_training_images_warns_it_is_optimistic(trained_output, tmp_path,
                                                                                       capsys):
    output, config, _ = trained_output
    copy = tmp_path / "copies"
    shutil.copytree(config.data, copy)
    status, out, _ = call(evaluate.main, ["--model", str(output), "--data", str(copy), "--labels", config.labels,
                                          "--output", str(tmp_path / "scores")], capsys)
    trained = sum(len(images) for name, images in json.loads((output / "bundle" / "bundle.json").read_text())[
        "split"].items() if name != "test")
    assert status == 0 and f"warning: {trained} of these 48 images were used to train or" in out


@pytest.mark.parametrize("command, argv", [(predict, ["x.png", "--json"]), (evaluate, ["--json"])])
def test_json_mode_prints_a_json_error_object_on_stdout_when_the_bundle_fails(command, argv, tmp_path, capsys):
    status, out, stderr = call(command.main, [*argv, "--model", str(tmp_path)], capsys)
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert json.loads(out) == {"error": stderr.strip().removeprefix("error: ")}
    assert "no model bundle in" in json.loads(out)["error"]


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False)])
def test_only_this_machines_own_addresses_count_as_private(host, loopback):
    assert web.is_loopback(host) == loopback


def test_serving_the_page_to_the_network_warns_that_it_has_no_login(untrained_output, monkeypatch, capsys):
    monkeypatch.setattr(web, "check_address", lambda host, port: None)
    monkeypatch.setattr(web, "build_page", lambda *args: type("Page", (), {"launch": lambda self, **kw: None})())
    assert run(lambda: web.main(["--model", str(untrained_output), "--host", "0.0.0.0", "--port", "7999"])) == 0
    assert capsys.readouterr().err == ("warning: the page has no login: anyone who can reach this machine on port 7999 "
                                       "can use the model and upload files (--host 127.0.0.1 keeps it to this "
                                       "machine)\n")


def test_the_page_does_not_show_visitors_where_the_model_lies(untrained_output):
    from defect_tf.apps.web_page import DefectApp, build_page
    from defect_tf.bundle.store import load_bundle
    from defect_tf.inference.predictor import Predictor

    bundle = load_bundle(untrained_output)
    page = build_page(DefectApp(Predictor(bundle)), [])
    shown = json.dumps(page.config)
    assert str(untrained_output) not in shown and "small_cnn" in shown


def test_evaluate_never_writes_its_scores_among_the_images(untrained_output, tiny_demo, capsys):
    root, _ = tiny_demo
    before = sorted(path.name for path in (root / "images").iterdir())
    status, _, stderr = call(evaluate.main, ["--model", str(untrained_output), "--data", str(root / "images"),
                                             "--output", str(root / "images")], capsys)
    assert status == 2 and "overlaps the data folder" in stderr and len(stderr.strip().splitlines()) == 1
    assert sorted(path.name for path in (root / "images").iterdir()) == before
