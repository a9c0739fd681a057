import os
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import load_bundle, save_bundle
from defect_tf.io.files import DiskFullError, atomic_write, is_disk_full, write_text


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    write_text(tmp_path / "a.json", "old")
    write_text(tmp_path / "a.json", "new")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"] and (tmp_path / "a.json").read_text() == "new"


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    write_text(tmp_path / "a.weights.h5", "old")

    def half_then_fail(path: Path):
        assert path.name.endswith(".weights.h5")  # Keras insists on the suffix
        path.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(DiskFullError, match=r"disk full while writing .*a\.weights\.h5; the previous version is intact"):
        atomic_write(tmp_path / "a.weights.h5", half_then_fail)
    assert [p.name for p in tmp_path.iterdir()] == ["a.weights.h5"] and (tmp_path / "a.weights.h5").read_text() == "old"


def test_disk_full_is_recognised_inside_other_errors():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as inner:
            raise RuntimeError("h5py: Can't write data") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(ValueError("something else"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1.5 MB file system (tmpfs); needs root, as on this project's machines and CI."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount_point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.integration
def test_a_really_full_disk_keeps_the_previous_bundle_and_leaves_no_temporary_files(tiny_disk):
    inputs = keras.Input((32, 32, 3))
    pixels = keras.layers.Flatten()(inputs)
    small = keras.Model(inputs, keras.layers.Dense(2)(pixels))  # 24 KB of weights
    save_bundle(tiny_disk, small, BundleMetadata(["a", "b"], 32, [0.3, 0.3]))
    large = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(200)(pixels)))  # 2.4 MB: does not fit
    with pytest.raises(DiskFullError, match="the previous bundle is intact"):
        save_bundle(tiny_disk, large, BundleMetadata(["a", "b"], 32, [0.1, 0.1]))
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["bundle"]
    bundle = load_bundle(tiny_disk)
    np.testing.assert_allclose(bundle.thresholds, [0.3, 0.3])
    assert bundle.model.count_params() == small.count_params()


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, "0o644", "0o755"), (0o077, "0o600", "0o700"),
                                                           (0o002, "0o664", "0o775")])
def test_written_files_and_folders_follow_the_umask_like_any_tool(tmp_path, umask, file_mode, folder_mode):
    from defect_tf.io.files import replace_folder

    previous = os.umask(umask)
    try:
        write_text(tmp_path / "metrics.json", "{}")
        replace_folder(tmp_path / "bundle", lambda folder: (folder / "model.keras").write_bytes(b"x"), "intact")
    finally:
        os.umask(previous)
    assert oct((tmp_path / "metrics.json").stat().st_mode & 0o777) == file_mode
    assert oct((tmp_path / "bundle").stat().st_mode & 0o777) == folder_mode
