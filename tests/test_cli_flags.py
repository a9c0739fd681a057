"""Every flag of every command, given a bad value, stops before any work with one line, exit status 2 and no
traceback. The table of bad values must cover every flag a command has: a new flag without bad values fails here."""

import argparse
import socket

import pytest

from defect_tf.apps import evaluate, export, predict, prepare, serve, train, train_anomaly, web
from defect_tf.apps.cli import run

COMMANDS = {"train": train, "prepare": prepare, "train_anomaly": train_anomaly, "inference": predict, "evaluate": evaluate, "app": web, "export": export, "serve": serve}

# command -> flag -> bad values. "{file}" is an existing file, "{folder}" an existing folder without a bundle,
# "{data}" the data folder, "{busy_port}" a port another socket holds, "{split_bad}" a malformed split file.
BAD_VALUES = {
    "train": {
        "--data": ["{missing}", "{file}", ""],
        "--labels": ["{missing}", "{folder}", "{file}", ""],
        "--task": ["regression"],
        "--positive": ["", "dent"],  # a label file's 1 and 0 already say which images show the defect
        "--label-smoothing": ["-0.1", "0.6", "nan"],
        "--threshold": ["-0.1", "1.5", "nan", "x"],
        "--output": ["{file}", "{data}", "{data}/sub", ""],
        "--on-bad-image": ["ignore"],
        "--backbone": ["resnet9000"],
        "--weights": ["{missing}.h5", "{image}", "{folder}"],
        "--image-size": ["0", "-5", "7", "10000", "64.5", "abc"],
        "--batch-size": ["0", "-1", "5000", "x"],
        "--warmup-epochs": ["-1", "x"],
        "--finetune-epochs": ["-1", "1e9"],
        "--unfreeze": ["-1"],
        "--lr": ["0", "-0.1", "nan", "inf", "2"],
        "--finetune-lr": ["0", "nan", "-1"],
        "--patience": ["-1"],
        "--optimizer": ["sgd"],
        "--schedule": ["step"],
        "--weight-decay": ["-0.1", "2", "nan"],
        "--sampler": ["weighted"],
        "--augment": ["extreme"],
        "--mixup": ["-0.2", "11", "nan"],
        "--gamma": ["-1", "11", "nan"],
        "--alpha": ["-0.5", "1.5", "nan"],
        "--rotation": ["sideways"],
        "--dropout": ["1.0", "-0.1", "1.5", "nan"],
        "--pooling": ["median"],
        "--head": ["kan"],
        "--attention": ["channel"],
        "--precision": ["float8"],
        "--cache": ["ram", ""],
        "--strategy": ["tpu", "parameter-server"],
        "--linear-probe": ["auto", ""],
        "--small-val": ["keep", ""],
        "--fill-na": ["-1", "11", "x", "1.5"],
        "--seed": ["-1", "99999999999", "x"],
        "--split-file": ["{missing}", "{split_bad}"],
    },
    "inference": {
        "--model": ["{missing}", "{file}", "{folder}", ""],
        "--runtime": ["tpu", "onnx", "litert"],  # the bundle holds no exported model
        "--threads": ["0", "x", "1000"],
        "--data": ["{missing}", "{file}"],
        "--output": ["{data}/predictions.csv"],  # for a folder run (--data) only
        "--explain": ["{file}", ""],
        "--localize": ["{file}", "", "{output}"],  # the model beside it holds no localiser
    },
    "train_anomaly": {
        "--task": ["multilabel"],
        "--data": ["{missing}", "{file}", "{folder}"],  # the last: no images in it
        "--labels": ["{missing}", "{folder}", "{labels}"],  # the last: four attributes, not one
        "--masks": ["{missing}", "{file}"],
        "--types": ["{missing}", "{folder}"],
        "--split-file": ["{missing}", "{split_bad}"],
        "--on-bad-image": ["maybe"],
        "--model": ["draem2", ""],
        "--backbone": ["small_cnn", "nope"],  # small_cnn: no pretrained weights
        "--image-size": ["31", "2000", "x"],
        "--coreset-size": ["99", "x"],
        "--epochs": ["0", "10001", "x"],
        "--seed": ["-1", "x"],
        "--output": ["{file}", "{data}/out"],  # the last: inside the photos
    },
    "serve": {
        "--model": ["{missing}", "{file}", "{folder}", ""],
        "--host": ["999.999.999.999", "no-such-host.invalid", ""],
        "--port": ["0", "-1", "70000", "x", "{busy_port}"],
        "--runtime": ["tpu", "onnx"],
        "--threads": ["0", "x"],
        "--max-request-mb": ["0", "-1", "nan"],
        "--max-files": ["0", "x"],
        "--max-concurrent": ["0", "-2"],
    },
    "export": {
        "--model": ["{missing}", "{file}", "{folder}", ""],
        "--format": ["tensorrt", ""],
        "--int8": ["half", "full", "dynamic"],  # the default --format onnx is exported in float32
    },
    "evaluate": {
        "--model": ["{missing}", "{file}", "{folder}"],
        "--data": ["{missing}", "{file}"],
        "--labels": ["{missing}", "{folder}"],
        "--split": ["holdout"],
        "--runtime": ["tpu", "onnx"],  # the bundle holds no exported model
        "--output": ["{file}"],
        "--batch-size": ["0", "-3", "x"],
        "--masks": ["{missing}", "{file}", "{folder}"],  # the last: the model is a classifier
        "--types": ["{missing}", "{folder}"],
    },
    "app": {
        "--model": ["{missing}", "{file}", "{folder}"],
        "--host": ["999.999.999.999", "no-such-host.invalid", ""],
        "--port": ["0", "-1", "70000", "x", "{busy_port}"],
        "--max-upload-mb": ["0", "-1", "nan", "x"],
        "--keep-uploads": ["0", "-5", "x"],
        "--samples": ["{missing}"],
    },
}
FLAGS_WITHOUT_VALUES = {"--help", "--resume", "--check", "--no-class-weights", "--no-cutout", "--ema", "--json",
                        "--accept-drop"}


def value_flags(module) -> set[str]:
    parser = module.build_parser()
    return {action.option_strings[-1] for action in parser._actions
            if action.option_strings and action.nargs != 0 and not isinstance(action, argparse._HelpAction)}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_table_has_bad_values_for_every_flag_of_every_command(command):
    flags = value_flags(COMMANDS[command])
    assert flags == set(BAD_VALUES[command]), "add bad values for new flags (and drop removed ones) in BAD_VALUES"
    assert not flags & FLAGS_WITHOUT_VALUES


def call(module, argv, capsys) -> tuple[int, str]:
    """Run a command in this process as its script does; (exit status, stderr)."""
    try:
        status = run(lambda: module.main(argv))
    except SystemExit as stop:  # argparse's own exit
        status = stop.code
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_demo, untrained_output):
    root, _ = tiny_demo
    folder = tmp_path_factory.mktemp("places")
    (folder / "some_file.txt").write_text("not what the flag wants\n")
    (folder / "empty").mkdir()
    (folder / "split_bad.txt").write_text("image split\nsurface_0000.png\n")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield {"missing": str(folder / "does_not_exist"), "file": str(folder / "some_file.txt"),
           "folder": str(folder / "empty"), "data": str(root / "images"), "split_bad": str(folder / "split_bad.txt"),
           "busy_port": str(holder.getsockname()[1]), "labels": str(root / "labels.txt"),
           "model": str(untrained_output), "image": str(root / "images" / "surface_0000.png"),
           "output": str(folder / "out")}
    holder.close()


def base_arguments(command: str, places: dict) -> list[str]:
    """Valid arguments for everything but the flag under test."""
    return {"train": ["--data", places["data"], "--labels", places["labels"], "--output", places["output"],
                      "--backbone", "small_cnn", "--weights", "none", "--image-size", "32"],
            "prepare": ["--data", places["data"], "--labels", places["labels"], "--output", places["output"],
                        "--image-size", "32"],
            "train_anomaly": ["--task", "anomaly", "--data", places["data"], "--output", places["output"]],
            "inference": [places["image"], "--model", places["model"]],
            "evaluate": ["--model", places["model"]],
            "app": ["--model", places["model"]],
            "serve": ["--model", places["model"]],
            "export": ["--model", places["model"]]}[command]


def with_flag(arguments: list[str], flag: str, value: str) -> list[str]:
    if flag in arguments:
        index = arguments.index(flag)
        return [*arguments[:index], flag, value, *arguments[index + 2:]]
    return [*arguments, flag, value]


# prepare's flags are train.py's, checked alike
BAD_VALUES["prepare"] = {flag: BAD_VALUES["train"][flag] for flag in (
    "--data", "--labels", "--task", "--positive", "--on-bad-image", "--split-file", "--image-size", "--seed",
    "--output")}

CASES = [(command, flag, value) for command, flags in BAD_VALUES.items() for flag, values in flags.items()
         for value in values]


@pytest.mark.parametrize("command,flag,value", CASES, ids=[f"{c} {f} {v}" for c, f, v in CASES])
def test_a_bad_flag_value_is_one_line_and_exit_status_2(command, flag, value, places, capsys):
    value = value.format(**places)
    status, stderr = call(COMMANDS[command], with_flag(base_arguments(command, places), flag, value), capsys)
    assert status == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "error" in stderr


@pytest.mark.parametrize("argv,expected", [
    (["--warmup-epochs", "0", "--finetune-epochs", "0"], "nothing would be trained"),
    (["--image-size", "10000"], "--image-size must be from 32 to 1024, not 10000"),
    (["--dropout", "1.0"], "--dropout must be from 0 to 0.99, not 1"),
])
def test_training_settings_that_would_train_nothing_or_run_out_of_memory_are_refused(argv, expected, places, capsys):
    status, stderr = call(train, [*base_arguments("train", places), *argv], capsys)
    assert status == 2 and expected in stderr


def test_an_inference_image_that_does_not_exist_is_one_line_per_image(places, capsys):
    status, stderr = call(predict, [places["missing"], places["folder"], "--model", places["model"]], capsys)
    assert status == 2 and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 2
