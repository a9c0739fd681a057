"""Ctrl-C or SIGTERM at any moment of a command says truthfully what is safe on disk and what to run next: during
TensorFlow's import, while preparing, before and after the first epoch, while saving, and after the bundle is saved
(its test evaluation). Each stage of a real (tiny) run is interrupted here."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from defect_tf.apps import train as train_cli
from defect_tf.apps.cli import run
from defect_tf.bundle.store import load_bundle
from defect_tf.train import preparation, trainer
from defect_tf.train.checkpoints import EpochCheckpoint
from defect_tf.train.progress import interrupts_deferred

ROOT = Path(__file__).resolve().parents[1]


def interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


def train_command(tiny_demo, output) -> list[str]:
    root, _ = tiny_demo
    return ["--data", str(root / "images"), "--labels", str(root / "labels.txt"), "--output", str(output),
            "--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
            "--warmup-epochs", "2", "--finetune-epochs", "1"]


def interrupted_run(tiny_demo, tmp_path, capsys) -> tuple[int, str, Path]:
    output = tmp_path / "out"
    status = run(lambda: train_cli.main(train_command(tiny_demo, output)))
    return status, capsys.readouterr().err, output


@pytest.mark.integration
def test_interrupted_while_preparing_nothing_was_trained(tiny_demo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(preparation, "check_data", interrupt)
    status, stderr, output = interrupted_run(tiny_demo, tmp_path, capsys)
    assert status == 130
    assert stderr == ("interrupted while preparing the run (checking the images, building the model): nothing was "
                      "trained and nothing replaced; run the same command again to start over\n")


@pytest.mark.integration
def test_interrupted_before_the_first_epoch_ended_there_is_nothing_to_resume(tiny_demo, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", interrupt)
    status, stderr, output = interrupted_run(tiny_demo, tmp_path, capsys)
    assert status == 130 and not (output / "checkpoint").exists()
    assert stderr.startswith("interrupted before the first epoch finished: there is nothing to resume")


@pytest.mark.integration
def test_interrupted_after_an_epoch_resume_continues_from_it(tiny_demo, tmp_path, monkeypatch, capsys):
    save = EpochCheckpoint.on_epoch_end

    def save_then_interrupt(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", save_then_interrupt)
    status, stderr, output = interrupted_run(tiny_demo, tmp_path, capsys)
    assert status == 130
    assert stderr == (f"interrupted; the last completed epoch (1) is saved. Continue from it with: python train.py "
                      f"--resume --output {output}\n")


@pytest.mark.integration
def test_interrupted_while_saving_the_previous_bundle_is_untouched_and_resume_finishes(tiny_demo, tmp_path,
                                                                                      monkeypatch, capsys):
    monkeypatch.setattr(trainer, "save_bundle", interrupt)
    status, stderr, output = interrupted_run(tiny_demo, tmp_path, capsys)
    assert status == 130 and not (output / "bundle").exists()
    assert stderr == ("interrupted while calibrating the thresholds and saving the model; training had finished and "
                      "its last epoch (3) is saved, the previous bundle is untouched. Finish with: python train.py "
                      f"--resume --output {output}\n")
    monkeypatch.undo()
    assert run(lambda: train_cli.main(["--resume", "--output", str(output)])) == 0
    assert load_bundle(output).metadata.epochs_trained == 3


@pytest.mark.integration
def test_interrupted_after_the_bundle_was_saved_says_it_is_complete_not_to_retrain(tiny_demo, tmp_path,
                                                                                   monkeypatch, capsys):
    monkeypatch.setattr(trainer, "evaluate_bundle", interrupt)
    status, stderr, output = interrupted_run(tiny_demo, tmp_path, capsys)
    assert status == 130
    assert stderr == (f"interrupted after the model was saved: the bundle in {output / 'bundle'} is complete; only "
                      f"the test-split evaluation was cut short. Score it with: python evaluate.py --model {output}\n")
    assert load_bundle(output).metadata.epochs_trained == 3 and not (output / "checkpoint").exists()


def test_a_signal_during_the_bundles_save_waits_for_the_save_to_be_recorded():
    steps, handler_before = [], signal.getsignal(signal.SIGINT)  # Python's, or "ignored" when started in background
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            steps.append("saved")
            signal.raise_signal(signal.SIGTERM)
            steps.append("recorded")
    assert steps == ["saved", "recorded"]
    assert signal.getsignal(signal.SIGINT) is handler_before


@pytest.mark.integration
@pytest.mark.parametrize("command", [["train.py", "--data", "x"], ["evaluate.py"], ["-m", "defect_tf", "train"]])
@pytest.mark.parametrize("seconds", [0.8, 1.5, 2.2])  # early, middle and late in TensorFlow's import (about 4 s here)
def test_ctrl_c_while_tensorflow_imports_is_one_line_and_exit_status_130(command, seconds, tmp_path):
    # a KeyboardInterrupt inside TensorFlow's import once surfaced as an ImportError (exit 1) or, under
    # `python -m`, as death by SIGINT (-2): the moment matters, so three of them
    target = [str(ROOT / command[0]), *command[1:]] if command[0].endswith(".py") else command
    # as from a terminal, where Ctrl-C is not ignored (a shell starts background jobs with SIGINT ignored)
    process = subprocess.Popen([sys.executable, *target], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(seconds)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    assert stderr == "interrupted\n"
