"""Where decoded images wait between epochs (data/cache.py): in memory while they fit, else on disk in the run's
output folder; a second epoch reads the cache, not the image files; the disk cache goes when the run ends."""

import shutil
from pathlib import Path

import pytest

from defect_tf.data.cache import CACHE_DIR, DISK_RESERVE, SHUFFLE_BUDGET, plan_cache
from defect_tf.errors import DefectTFError

MB = 1 << 20


def test_auto_keeps_images_in_memory_while_they_fit_in_half_the_free_memory(tmp_path):
    # 1,000 images at 64 px: 1000 * 64 * 64 * 3 = 12,288,000 bytes
    plan = plan_cache("auto", 1000, 64, tmp_path, memory=100 * MB, disk_free=10 * DISK_RESERVE)
    assert (plan.kind, plan.directory, plan.decoded_bytes) == ("memory", None, 12_288_000)
    assert plan.line.startswith("cache: 1,000 decoded images (12.3 MB) in memory")
    assert plan.shuffle_buffer(1000, 64) == 1000


def test_auto_goes_to_disk_beyond_half_the_free_memory_and_bounds_the_shuffle_buffer(tmp_path):
    plan = plan_cache("auto", 1000, 64, tmp_path, memory=20 * MB, disk_free=10 * DISK_RESERVE)
    assert (plan.kind, plan.directory) == ("disk", tmp_path / CACHE_DIR)
    assert "on disk" in plan.line and "more than half the free memory (10.5 MB)" in plan.line
    assert plan.file("train") == str(tmp_path / CACHE_DIR / "train")
    # 50,000 images at 128 px: a buffer of SHUFFLE_BUDGET bytes holds 268,435,456 // 49,152 = 5,461 of them
    assert plan.shuffle_buffer(50_000, 128) == SHUFFLE_BUDGET // (128 * 128 * 3) == 5461
    assert plan.shuffle_buffer(100, 128) == 100


def test_forced_choices_and_their_one_line_refusals(tmp_path):
    assert plan_cache("disk", 10, 32, tmp_path, memory=100 * MB, disk_free=10 * DISK_RESERVE).kind == "disk"
    with pytest.raises(DefectTFError, match=r"^--cache memory: 1,000 decoded images \(12.3 MB\) need more than half"):
        plan_cache("memory", 1000, 64, tmp_path, memory=20 * MB)
    with pytest.raises(DefectTFError, match=r"needs 1.1 GB free in .*, which has 104.9 MB; free some space"):
        plan_cache("auto", 1000, 64, tmp_path, memory=20 * MB, disk_free=100 * MB)


@pytest.mark.integration
@pytest.mark.parametrize("sampler", ["shuffle", "balanced"])
def test_a_disk_cached_run_reads_the_cache_after_its_first_epoch_and_removes_it(tiny_demo, tmp_path, monkeypatch,
                                                                                  sampler, capsys):
    from defect_tf.apps import train
    from defect_tf.train.checkpoints import EpochCheckpoint

    root, _ = tiny_demo
    images = tmp_path / "images"
    shutil.copytree(root / "images", images)
    output = tmp_path / "out"
    seen = []
    save = EpochCheckpoint.on_epoch_end

    def first_epoch_then_files_gone(self, epoch, logs=None):
        save(self, epoch, logs)
        seen.append(sorted(path.name for path in (output / CACHE_DIR).iterdir()))
        if epoch == 0:  # the training and validation images: later epochs and the calibration must not need them
            split = dict(line.split() for line in (output / "split.txt").read_text().splitlines()[1:])
            for name, part in split.items():
                if part != "test":
                    (images / name).unlink()

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", first_epoch_then_files_gone)
    code = train.main(["--data", str(images), "--labels", str(root / "labels.txt"), "--output", str(output),
                       "--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
                       "--warmup-epochs", "2", "--finetune-epochs", "2", "--sampler", sampler, "--cache", "disk"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    cached = sum(not line.endswith(" test") for line in (output / "split.txt").read_text().splitlines()[1:])
    assert f"cache: {cached} decoded images ({cached * 32 * 32 * 3 / 1000:.1f} kB) on disk" in printed
    assert f"on disk in {output / CACHE_DIR} (--cache disk; removed when the run ends)" in printed
    assert len(seen) == 4 and any(name.startswith("train") for name in seen[0])
    assert not (output / CACHE_DIR).exists() and (output / "bundle" / "bundle.json").is_file()
    assert Path(output / "metrics.json").is_file()
