"""Shared test set-up: quiet TensorFlow, the test tiers, and a tiny generated demo data set reused across tests.

Tiers: `make test` runs everything; `make test-fast` only the unit tier (no training, no subprocess, no browser),
which `DEFECT_TF_TIER=unit` enforces: a test of that tier that trains or starts a program fails and says to mark
it `integration`.
"""

import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from PIL import Image  # noqa: E402

# Property-based tests: the same examples on every run (derandomized, no example database written), no per-example
# deadline (the first decode builds TensorFlow's graph); each test states its own time bound.
settings.register_profile("defect_tf", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("defect_tf")

OUTSIDE_THE_UNIT_TIER = ("slow", "integration", "browser")
TRAINED_FIXTURES = {"trained_output": "integration", "exported_output": "integration", "demo_run": "slow"}


SHARED_BY_ONE_WORKER = ("demo_run",)  # fixtures too costly to build in each worker (`make test` runs two)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """A test that uses a trained model's fixture belongs to that fixture's tier; the tests of a costly fixture run
    in one worker (`--dist loadgroup`), which builds it once."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marker in TRAINED_FIXTURES.items():
            if fixture in names:
                item.add_marker(marker)
        for fixture in SHARED_BY_ONE_WORKER:
            if fixture in names:
                item.add_marker(pytest.mark.xdist_group(fixture))


def pytest_xdist_node_collection_finished(node, ids):
    """Under `--dist loadgroup`, a worker's test ids carry their group (`id@group`); none do when pytest-xdist does
    not group under the installed pytest (9.2 with pytest-xdist 3.8, silently): stop, rather than run the two
    workers' costliest tests at once (this suite always has grouped tests)."""
    if node.config.getoption("dist") == "loadgroup" and ids and not any("@" in test_id for test_id in ids):
        pytest.exit("--dist loadgroup groups none of the tests under this pytest and pytest-xdist (pytest-xdist "
                    "issue 1386): install requirements.txt's pins", returncode=3)


@pytest.fixture(autouse=True)
def unit_tier_guard(request, monkeypatch):
    """Under DEFECT_TF_TIER=unit, a unit-tier test that trains or starts a program fails, naming the marker it needs."""
    if os.environ.get("DEFECT_TF_TIER") != "unit" or any(request.node.get_closest_marker(m)
                                                        for m in OUTSIDE_THE_UNIT_TIER):
        return

    def refused(what):
        def refuse(*args, **kwargs):
            pytest.fail(f"{what} in the unit tier: mark this test @pytest.mark.integration")
        return refuse

    import keras

    monkeypatch.setattr(keras.Model, "fit", refused("training (keras.Model.fit)"))
    monkeypatch.setattr("defect_tf.train.phases.fit_on_workers", refused("training (train/worker_loop.py)"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refused("a subprocess"))


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """48 demo images at 48 px with labels and masks; generated once per test session."""
    from defect_tf.data.demo import generate_demo

    root = tmp_path_factory.mktemp("tiny_demo")
    table = generate_demo(root, n_images=48, size=48, seed=3)
    return root, table


@pytest.fixture(scope="session")
def untrained_output(tiny_demo, tmp_path_factory):
    """An output folder whose bundle was built and saved without training (unit tier): for commands whose flags
    are under test, not their model's predictions. It names the tiny demo's data, labels and a split of it."""
    from defect_tf.bundle.metadata import BundleMetadata
    from defect_tf.bundle.store import save_bundle
    from defect_tf.models.classifier import build_classifier

    root, table = tiny_demo
    output = tmp_path_factory.mktemp("untrained_outputs")
    model = build_classifier("small_cnn", len(table.attributes), 32, None)
    half = len(table.images) // 2
    save_bundle(output, model, BundleMetadata(
        table.attributes, 32, [0.5] * len(table.attributes), backbone="small_cnn", data_dir=str(root / "images"),
        labels_file=str(root / "labels.txt"), split={"train": table.images[:half], "test": table.images[half:]}))
    return output


@pytest.fixture(scope="session")
def trained_output(tiny_demo, tmp_path_factory):
    """A real (tiny) training run: 2 warm-up + 2 fine-tune epochs at 32 px from scratch."""
    from defect_tf.train.config import TrainConfig
    from defect_tf.train.trainer import train

    root, _ = tiny_demo
    output = tmp_path_factory.mktemp("outputs")
    config = TrainConfig(data=str(root / "images"), labels=str(root / "labels.txt"), output=str(output),
                         weights="none", image_size=32, batch_size=8, warmup_epochs=2, finetune_epochs=2,
                         patience=5)
    report = train(config, log=lambda *_: None)
    return output, config, report


@pytest.fixture(scope="session")
def exported_output(trained_output, tmp_path_factory):
    """A copy of the tiny trained run's output folder with its model exported to ONNX: (output folder, data folder)."""
    import shutil
    from pathlib import Path

    from defect_tf.export.exporter import export_bundle

    output, config, _ = trained_output
    copy = tmp_path_factory.mktemp("exported") / "outputs"
    shutil.copytree(output, copy)
    export_bundle(copy, "onnx", log=lambda *_: None)
    return copy, Path(config.data)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`make demo`'s training for real (about 3 minutes): (data root, output folder, config, test report)."""
    from defect_tf.apps import train as train_cli
    from defect_tf.apps.demo import TRAIN_FLAGS
    from defect_tf.data.demo import generate_demo
    from defect_tf.train.trainer import train

    root = tmp_path_factory.mktemp("demo")
    generate_demo(root)
    config = train_cli.parse_args(["--data", str(root / "images"), "--labels", str(root / "labels.txt"),
                                   "--output", str(root / "outputs"), *TRAIN_FLAGS])
    report = train(config, log=print)
    return root, root / "outputs", config, report


def _striped(rng, height=48, width=64):
    stripes = 120 + 25 * np.sin(np.arange(width) / 2.0)[None, :]
    return np.clip(stripes + rng.normal(0, 6, (height, width)), 0, 255)


@pytest.fixture(scope="session")
def tiles(tmp_path_factory):
    """Anomaly localisation's data: 36 striped 64 x 48 photos, 30 intact (24 train, 6 test), 6 with a dark disc (test), masks and types."""
    root = tmp_path_factory.mktemp("tiles")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    labels, split, types = ["image defect"], ["image split"], ["image type"]
    for i in range(36):
        name = f"tile_{i:02d}.png"
        pixels = _striped(rng)
        defective = i >= 30
        if defective:
            yy, xx = np.mgrid[:48, :64]
            disc = (yy - rng.integers(12, 36)) ** 2 + (xx - rng.integers(12, 52)) ** 2 <= 36
            pixels[disc] = 30
            Image.fromarray((disc * 255).astype(np.uint8)).save(root / "masks" / name)
        Image.fromarray(pixels.astype(np.uint8)).convert("RGB").save(root / "images" / name)
        labels.append(f"{name} {int(defective)}")
        split.append(f"{name} {'train' if i < 24 else 'test'}")
        types.append(f"{name} {'hole' if defective else 'free'}")
    for file, lines in (("labels.txt", labels), ("split.txt", split), ("types.txt", types)):
        (root / file).write_text("\n".join(lines) + "\n")
    return root
