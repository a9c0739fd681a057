import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from defect_tf.bundle.store import load_bundle
from defect_tf.errors import DefectTFError
from defect_tf.train.checkpoints import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = dict(warmup=4, finetune=4)

pytestmark = pytest.mark.integration  # every test here trains or resumes a real run


SCRATCH = ["--backbone", "small_cnn", "--weights", "none"]


def start_training(root, output, labels=None, model=SCRATCH):
    """`train.py` as a process to kill, with a TMPDIR beside `output`: a killed process cannot remove TensorFlow's
    generated source files, which would otherwise pile up in the machine's temporary folder run after run."""
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(root / "images"), "--labels",
               str(labels or root / "labels.txt"), "--output", str(output), *model,
               "--image-size", "32", "--batch-size", "4", "--warmup-epochs", str(EPOCHS["warmup"]),
               "--finetune-epochs", str(EPOCHS["finetune"]), "--patience", "10"]
    scratch = output.parent / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)})


def wait_for_epoch(output, epoch, process, timeout=300):
    state = output / "checkpoint" / "state.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended before epoch {epoch}: {process.stderr.read()[-2000:]}")
        try:
            if json.loads(state.read_text())["epoch"] >= epoch:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail(f"no checkpoint for epoch {epoch} within {timeout} s")


def resume(output):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "--resume", "--output", str(output)],
                          capture_output=True, text=True, timeout=600)


def assert_complete_run(output):
    history = json.loads((output / "history.json").read_text())
    total = EPOCHS["warmup"] + EPOCHS["finetune"]
    assert [record["epoch"] for record in history] == list(range(1, total + 1))
    assert [record["phase"] for record in history] == ["warm-up"] * EPOCHS["warmup"] + ["fine-tune"] * EPOCHS["finetune"]
    assert (output / "loss_curve.png").is_file() and (output / "metrics.json").is_file()
    assert load_bundle(output).metadata.epochs_trained == total
    assert not (output / "checkpoint").exists()


@pytest.mark.parametrize("kill_signal, kill_after_epoch", [(signal.SIGTERM, 2), (signal.SIGKILL, 6)],
                         ids=["sigterm-in-warm-up", "power-loss-in-fine-tune"])
def test_a_killed_training_run_resumes_to_a_complete_bundle(tiny_demo, tmp_path, kill_signal, kill_after_epoch):
    root, _ = tiny_demo
    output = tmp_path / "outputs"
    process = start_training(root, output)
    wait_for_epoch(output, kill_after_epoch, process)
    process.send_signal(kill_signal)
    _, stderr = process.communicate(timeout=120)
    if kill_signal == signal.SIGTERM:
        assert process.returncode == 130
        assert f"python train.py --resume --output {output}" in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    assert not (output / "bundle").exists()
    checkpoint = read_checkpoint(output)
    assert checkpoint.epoch >= kill_after_epoch
    assert checkpoint.phase == ("warm-up" if checkpoint.epoch <= EPOCHS["warmup"] else "fine-tune")

    result = resume(output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming after epoch {checkpoint.epoch}" in result.stdout
    assert_complete_run(output)


def test_a_linear_probe_run_killed_in_fine_tuning_resumes_without_fitting_the_probe_again(tiny_demo, tmp_path):
    root, _ = tiny_demo
    output = tmp_path / "outputs"
    process = start_training(root, output, model=["--backbone", "efficientnet_lite0", "--weights", "imagenet",
                                                  "--linear-probe", "on"])
    wait_for_epoch(output, 2, process)
    process.kill()
    first, _ = process.communicate(timeout=120)
    assert first.count("phase 1/2 linear probe") == 1
    checkpoint = read_checkpoint(output)
    assert checkpoint.phase == "fine-tune" and checkpoint.epoch >= 2

    result = resume(output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming after epoch {checkpoint.epoch} (fine-tune)" in result.stdout
    assert "phase 1/2 linear probe" not in result.stdout  # the checkpoint holds the probe's head
    history = json.loads((output / "history.json").read_text())
    assert [(row["epoch"], row["phase"]) for row in history] == \
        [(0, "linear probe")] + [(epoch, "fine-tune") for epoch in range(1, EPOCHS["finetune"] + 1)]
    assert load_bundle(output).metadata.epochs_trained == EPOCHS["finetune"]
    assert not (output / "checkpoint").exists()


def test_resume_without_a_checkpoint_says_why(tmp_path):
    with pytest.raises(DefectTFError, match="nothing to resume"):
        read_checkpoint(tmp_path)
    result = resume(tmp_path)
    assert result.returncode == 2 and "nothing to resume" in result.stderr and "Traceback" not in result.stderr


def test_resume_after_the_label_header_changed_is_a_clear_error(tiny_demo, tmp_path):
    root, _ = tiny_demo
    labels = tmp_path / "labels.txt"
    labels.write_text((root / "labels.txt").read_text())
    output = tmp_path / "outputs"
    process = start_training(root, output, labels)
    wait_for_epoch(output, 1, process)
    process.kill()
    process.communicate(timeout=120)
    header, *rows = labels.read_text().splitlines()
    labels.write_text("\n".join([header.replace("dent", "dents"), *rows]) + "\n")
    result = resume(output)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "but the interrupted run was training ['scratch', 'dent', 'crack', 'stain']" in result.stderr
    assert read_checkpoint(output).epoch >= 1  # the checkpoint is kept for when the header is restored


def interrupted_run(tiny_demo, tmp_path):
    """A run on a private copy of the demo, killed after its first epoch: (data, labels, output)."""
    import shutil

    root, _ = tiny_demo
    data, labels, output = tmp_path / "images", tmp_path / "labels.txt", tmp_path / "outputs"
    shutil.copytree(root / "images", data)
    labels.write_text((root / "labels.txt").read_text())
    process = start_training(tmp_path, output, labels)
    wait_for_epoch(output, 1, process)
    process.kill()
    process.communicate(timeout=120)
    return data, labels, output


def test_resume_after_label_values_changed_names_the_rows_and_keeps_the_checkpoint(tiny_demo, tmp_path):
    _, labels, output = interrupted_run(tiny_demo, tmp_path)
    header, *rows = labels.read_text().splitlines()
    name, first, *rest = rows[5].split()
    rows[5] = " ".join([name, "0" if first == "1" else "1", *rest])
    labels.write_text("\n".join([header, *rows[:-1]]) + "\n")  # one value flipped, the last row removed
    result = resume(output)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    removed = rows[-1].split()[0]
    assert (f"changed since the interrupted run started: 1 row(s) changed values ({name}); 1 row(s) removed "
            f"({removed})") in result.stderr
    assert read_checkpoint(output).epoch >= 1


def test_resume_keeps_the_runs_own_split_when_rows_were_added(tiny_demo, tmp_path):
    import shutil

    data, labels, output = interrupted_run(tiny_demo, tmp_path)
    split_before = (output / "split.txt").read_text()
    header, *rows = labels.read_text().splitlines()
    for index in range(12):  # rows that a fresh stratified split would spread over all three parts
        shutil.copy(data / rows[index].split()[0], data / f"new_{index}.png")
    added = [f"new_{index}.png {' '.join(rows[index].split()[1:])}" for index in range(12)]
    labels.write_text("\n".join([header, *added, *rows]) + "\n")
    result = resume(output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "note: 12 row(s) added to" in result.stdout and "are not used by it" in result.stdout
    assert (output / "split.txt").read_text() == split_before
    assert not any(image.startswith("new_") for images in load_bundle(output).metadata.split.values()
                   for image in images)


@pytest.mark.parametrize("damage", ["state", "weights"])
def test_a_damaged_checkpoint_is_one_line_saying_to_start_over(tmp_path, damage):
    directory = tmp_path / "checkpoint"
    directory.mkdir()
    state = {"config": {}, "phase": "warm-up", "epoch": 1, "records": [], "weights_file": "epoch-0001.weights.h5",
             "early_stopping": None}
    (directory / "state.json").write_text("{not json" if damage == "state" else json.dumps(state))
    with pytest.raises(DefectTFError, match="damaged.*start a new run without --resume"):
        read_checkpoint(tmp_path)
    result = resume(tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "damaged" in result.stderr


def test_an_interrupt_before_the_first_epoch_does_not_advise_resume(tiny_demo, tmp_path, monkeypatch, capsys):
    from defect_tf.apps import train as train_cli
    from defect_tf.apps.cli import run

    root, _ = tiny_demo

    def interrupted(config, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "train", interrupted)
    status = run(lambda: train_cli.main(["--data", str(root / "images"), "--labels", str(root / "labels.txt"),
                                         "--output", str(tmp_path / "out")]))
    assert status == 130
    assert capsys.readouterr().err == ("interrupted while preparing the run (checking the images, building the "
                                       "model): nothing was trained and nothing replaced; run the same command "
                                       "again to start over\n")


@pytest.mark.parametrize("change", [{"head": "mlp"}, {"backbone": "small_cnn_hires"}])
def test_a_checkpoint_whose_weights_do_not_fit_its_settings_is_one_line_on_resume(tiny_demo, tmp_path, change):
    _, _, output = interrupted_run(tiny_demo, tmp_path)
    state_file = output / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "config": {**state["config"], **change}}))
    result = resume(output)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1
    assert "does not fit the run its settings describe" in result.stderr and "start a new run without --resume" in \
        result.stderr


def test_a_checkpoint_naming_files_outside_its_folder_is_damaged(tmp_path):
    directory = tmp_path / "checkpoint"
    directory.mkdir()
    (tmp_path / "secret.h5").write_bytes(b"x")
    state = {"config": {}, "phase": "warm-up", "epoch": 1, "records": [], "weights_file": "../secret.h5",
             "early_stopping": None}
    (directory / "state.json").write_text(json.dumps(state))
    with pytest.raises(DefectTFError, match="names files outside the checkpoint: ../secret.h5"):
        read_checkpoint(tmp_path)
