"""Shared test set-up: quiet TensorFlow, and a tiny generated demo data set reused across tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """48 demo images at 48 px with labels and masks; generated once per test session."""
    from defect_tf.demo import generate_demo

    root = tmp_path_factory.mktemp("tiny_demo")
    table = generate_demo(root, n_images=48, size=48, seed=3)
    return root, table


@pytest.fixture(scope="session")
def trained_output(tiny_demo, tmp_path_factory):
    """A real (tiny) training run: 2 warm-up + 2 fine-tune epochs at 32 px from scratch."""
    from defect_tf.training import TrainConfig, train

    root, _ = tiny_demo
    output = tmp_path_factory.mktemp("outputs")
    config = TrainConfig(data=str(root / "images"), labels=str(root / "labels.txt"), output=str(output),
                         weights="none", image_size=32, batch_size=8, warmup_epochs=2, finetune_epochs=2,
                         patience=5)
    report = train(config, log=lambda *_: None)
    return output, config, report


def makefile_demo_flags() -> list[str]:
    """The training flags `make demo` uses, read from the Makefile so the slow tests run exactly those."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text().replace("\\\n", " ")
    return re.search(r"^DEMO_FLAGS := (.*)$", text, re.MULTILINE).group(1).split()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`make demo`'s training for real (about 4 minutes): (data root, output folder, config, test report)."""
    import train as train_cli
    from defect_tf.demo import generate_demo
    from defect_tf.training import train

    root = tmp_path_factory.mktemp("demo")
    generate_demo(root)
    config = train_cli.parse_args(["--data", str(root / "images"), "--labels", str(root / "labels.txt"),
                                   "--output", str(root / "outputs"), *makefile_demo_flags()])
    report = train(config, log=print)
    return root, root / "outputs", config, report


def pytest_configure(config):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the CLIs (train.py, ...) live at the top
