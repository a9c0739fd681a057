"""`--help` and `-h` of every program and sub-command print help and exit 0, touching no file: the scripts beside
train.py (those to come included: the list is read from the folder), every `defect-tf` command, the demo
generator and the benchmarks."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from defect_tf.apps.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path for path in [*ROOT.glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
                 if 'if __name__ == "__main__"' in path.read_text())
MODULES = [("defect_tf", []), *(("defect_tf", [command]) for command in COMMANDS), ("defect_tf.data.demo", []),
           ("defect_tf", ["train", "--task", "anomaly"])]
PROGRAMS = [(str(path.relative_to(ROOT)), "path", str(path), []) for path in SCRIPTS] + [
    (" ".join(["-m", module, *words]), "module", module, words) for module, words in MODULES]


# What the libraries themselves create in a home on their first import: matplotlib's font cache and settings folder,
# Keras's settings file. Not the tool's writes, and nothing of the user's.
LIBRARY_FILES = ("home/.cache", "home/.config", "home/.config/matplotlib", "home/.keras", "home/.keras/keras.json")


def everything_under(folder: Path) -> list[str]:
    """Every entry under `folder` but what the libraries create on their first import (LIBRARY_FILES)."""
    entries = [path.relative_to(folder).as_posix() for path in folder.rglob("*")]
    return sorted(entry for entry in entries if entry not in LIBRARY_FILES and not entry.startswith("home/.cache/"))


@pytest.fixture
def empty_places(tmp_path, monkeypatch):
    """An empty current folder and home (Keras's cache included): where a program might write."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    return tmp_path


def test_the_walk_covers_the_programs_a_user_runs():
    names = [name for name, *_ in PROGRAMS]
    assert {"train.py", "inference.py", "evaluate.py", "app.py", "benchmarks/transfer.py"} <= set(names)
    assert {"-m defect_tf train", "-m defect_tf check", "-m defect_tf demo", "-m defect_tf.data.demo"} <= set(names)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name, kind, target, words", PROGRAMS, ids=[name for name, *_ in PROGRAMS])
def test_help_prints_help_exits_0_and_touches_no_file(name, kind, target, words, flag, empty_places, monkeypatch,
                                                      capsys):
    monkeypatch.setattr(sys, "argv", [target if kind == "path" else name.split()[1], *words, flag])
    with pytest.raises(SystemExit) as stop:
        if kind == "path":
            runpy.run_path(target, run_name="__main__")
        else:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
    output = capsys.readouterr()
    assert stop.value.code in (0, None), output.err
    assert output.out.lstrip().startswith("usage:") and "Traceback" not in output.err
    assert everything_under(empty_places) == ["home", "work"]


@pytest.mark.integration
@pytest.mark.parametrize("command", [["train.py", "--help"], ["-m", "defect_tf", "demo", "-h"]])
def test_help_from_the_shell_in_an_empty_folder(command, tmp_path):
    target = [str(ROOT / command[0]), *command[1:]] if command[0].endswith(".py") else command
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    environment = {**os.environ, "HOME": str(tmp_path / "home")}
    environment.pop("KERAS_HOME", None)
    result = subprocess.run([sys.executable, *target], cwd=tmp_path / "work", capture_output=True, text=True,
                            timeout=120, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:") and result.stderr == ""
    assert everything_under(tmp_path) == ["home", "work"]
