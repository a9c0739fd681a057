"""The package as a user installs it: pyproject's dependencies pinned in requirements.txt, the `defect-tf` command,
and imports that work without anyone editing sys.path."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from defect_tf.apps import main as defect_tf_command

ROOT = Path(__file__).resolve().parents[1]


def pinned_requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            pins[requirement.name.lower()] = next(iter(requirement.specifier)).version
    return pins


def test_every_dependency_of_the_package_is_pinned_to_a_version_it_accepts():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = pinned_requirements()
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    for line in wanted:
        requirement = Requirement(line)
        assert requirement.name.lower() in pins, f"{requirement.name} is not pinned in requirements.txt"
        assert requirement.specifier.contains(pins[requirement.name.lower()]), (requirement, pins[requirement.name])
    assert sorted(pins) == sorted(Requirement(line).name.lower() for line in wanted), "requirements.txt pins extras"


def test_the_console_script_runs_each_program_by_name(capsys):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"defect-tf": "defect_tf.apps.main:main"}
    assert defect_tf_command.main(["--help"]) == 0
    assert "predict   label photos" in capsys.readouterr().out
    assert defect_tf_command.main([]) == 2
    assert defect_tf_command.main(["fit"]) == 2
    assert "unknown command 'fit'; choose one of: train, check, prepare, predict, evaluate, export, serve, web, demo" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        defect_tf_command.main(["evaluate", "--help"])
    assert exit_info.value.code == 0 and "usage: defect-tf evaluate" in capsys.readouterr().out


def test_check_runs_train_with_check_first(monkeypatch):
    from defect_tf.apps import train

    seen = []
    monkeypatch.setattr(train, "main", lambda argv: seen.append(argv) or 0)
    assert defect_tf_command.main(["check", "--data", "d", "--labels", "l"]) == 0
    assert seen == [["--check", "--data", "d", "--labels", "l"]]


def test_no_python_file_edits_sys_path():
    """The package is installed (pip install -e .); scripts and tests import it, and each other, without path edits."""
    files = [path for folder in ("defect_tf", "tests", "benchmarks", "docs") for path in (ROOT / folder).rglob("*.py")]
    files += list(ROOT.glob("*.py"))
    offenders = [str(path.relative_to(ROOT)) for path in files
                 if path != Path(__file__) and "sys.path" in path.read_text()]
    assert offenders == []


@pytest.mark.integration
def test_the_bundles_record_the_decisions_and_the_guarded_readers_import_no_tensorflow():
    """The seam a runtime without TensorFlow needs: reading a bundle's contract, deciding, reading files."""
    import subprocess
    import sys

    modules = ["defect_tf.bundle.metadata", "defect_tf.decisions", "defect_tf.limits", "defect_tf.io.untrusted",
               "defect_tf.io.file_types", "defect_tf.data.image_files", "defect_tf.apps.cli", "defect_tf.apps.launch",
               "defect_tf.quiet", "defect_tf.runtime.select", "defect_tf.runtime.onnx", "defect_tf.runtime.litert",
               "defect_tf.runtime.folder", "defect_tf.apps.predict", "defect_tf.apps.serve", "defect_tf.export.formats",
               "defect_tf.anomaly.registry", "defect_tf.anomaly.metadata", "defect_tf.anomaly.regions",
               "defect_tf.anomaly.calibration", "defect_tf.anomaly.images", "defect_tf.anomaly.maps",
               "defect_tf.anomaly.patchcore.coreset", "defect_tf.anomaly.patchcore.maps", "defect_tf.anomaly.draem.maps",
               "defect_tf.anomaly.base", "defect_tf.anomaly.runtimes", "defect_tf.anomaly.store",
               "defect_tf.anomaly.pipeline", "defect_tf.data.cache", "defect_tf.io.file_names", "defect_tf.evaluate.localisation"]
    code = (f"import sys\nfor name in {modules!r}: __import__(name)\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules)\nprint(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.integration  # runs git
def test_the_repository_tracks_nothing_that_make_demo_writes():
    """`make demo` in a fresh clone refuses to replace files it did not write: a tracked `labels.txt` stopped it."""
    import subprocess

    from defect_tf.data.demo import DEMO_FILES

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", *DEMO_FILES, ".defect_tf-output.json"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked == []
