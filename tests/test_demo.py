from pathlib import Path

import cv2
import numpy as np
import pytest

from defect_tf.data.demo import ATTRIBUTES, DEMO_IMAGES, generate_demo, mask_path, render_sample
from defect_tf.data.labels import known_mask, parse_labels
from defect_tf.io.output_folder import OutputFolderError

ROOT = Path(__file__).resolve().parents[1]


def test_generator_is_deterministic(tmp_path):
    first = generate_demo(tmp_path / "a", n_images=6, size=48, seed=1)
    second = generate_demo(tmp_path / "b", n_images=6, size=48, seed=1)
    assert np.array_equal(first.values, second.values, equal_nan=True)
    for name in first.images:
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()


@pytest.fixture(scope="module")
def demo_labels(tmp_path_factory):
    """The labels of the full demo set, as `make demo` generates them."""
    folder = tmp_path_factory.mktemp("demo")
    generated = generate_demo(folder, n_images=DEMO_IMAGES)
    assert parse_labels(folder / "labels.txt").images == generated.images
    return parse_labels(folder / "labels.txt")


def test_about_a_fifth_of_labels_are_na_and_defects_co_occur(demo_labels):
    table = demo_labels
    assert table.attributes == list(ATTRIBUTES) and len(table.images) == DEMO_IMAGES
    na_fraction = 1 - known_mask(table.values).mean()
    assert 0.17 < na_fraction < 0.23
    positives_per_image = (table.values == 1).sum(axis=1)
    assert (positives_per_image >= 2).mean() > 0.2 and (positives_per_image == 0).mean() > 0.05
    for j in range(len(ATTRIBUTES)):
        assert 0.25 < (table.values[:, j] == 1).sum() / known_mask(table.values[:, j]).sum() < 0.6


@pytest.mark.parametrize("theirs", ["labels.txt", "images/surface_0000.png", "masks/notes.txt"])
def test_the_generator_refuses_a_folder_holding_files_it_did_not_write(tmp_path, theirs):
    (tmp_path / theirs).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / theirs).write_text("the user's own")
    with pytest.raises(OutputFolderError, match="already holds .*which this tool did not write"):
        generate_demo(tmp_path, n_images=2, size=32)
    assert (tmp_path / theirs).read_text() == "the user's own"
    assert sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*")) == sorted(
        {theirs, *(str(parent.as_posix()) for parent in Path(theirs).parents if str(parent) != ".")})


def test_the_generator_rewrites_its_own_files(tmp_path):
    generate_demo(tmp_path, n_images=3, size=32, seed=1)
    generate_demo(tmp_path, n_images=2, size=32, seed=2)
    assert len(parse_labels(tmp_path / "labels.txt").images) == 2


def test_every_shown_defect_has_a_mask_where_the_image_changed(tmp_path):
    table = generate_demo(tmp_path, n_images=12, size=64, seed=2)
    for i, name in enumerate(table.images):
        _, present, masks = render_sample(2 * 1_000_003 + i, 64)
        for attribute in ATTRIBUTES:
            path = mask_path(tmp_path, name, attribute)
            assert path.exists() == present[attribute]
            if present[attribute]:
                mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                assert set(np.unique(mask)) <= {0, 255} and 0 < (mask > 0).mean() < 0.5
                np.testing.assert_array_equal(mask, masks[attribute])


def test_make_demo_runs_each_step_in_order_prints_its_command_and_stops_at_a_failure(monkeypatch, capsys):
    from defect_tf.apps import demo

    ran = []
    steps = [(f"python step{i}.py", lambda argv, i=i: ran.append((i, argv)) or (2 if i == 1 else 0), [f"--a{i}"])
             for i in range(3)]
    monkeypatch.setattr(demo, "STEPS", steps)
    assert demo.main([]) == 2
    assert ran == [(0, ["--a0"]), (1, ["--a1"])]  # step 2 never ran
    assert capsys.readouterr().out.split("\n$ ")[1:] == ["python step0.py --a0\n", "python step1.py --a1\n"]


def test_the_readme_shows_the_demos_training_flags():
    from defect_tf.apps.demo import SAMPLE_PHOTO, STEPS, TRAIN_FLAGS

    assert " ".join(TRAIN_FLAGS) in (ROOT / "README.md").read_text()
    assert [command for command, _, _ in STEPS] == ["python -m defect_tf.data.demo", "python train.py",
                                                    "python evaluate.py", "python inference.py"]
    assert SAMPLE_PHOTO.startswith("images/") and STEPS[-1][2] == [SAMPLE_PHOTO]
