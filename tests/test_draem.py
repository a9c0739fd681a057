"""DRAEM: the synthetic-anomaly generator (mask shape, coverage, seeding, blending), both losses against values
computed by hand, and a tiny run through the command line that is interrupted, resumed and saved."""

import json

import numpy as np
import pytest

from defect_tf.anomaly.draem.synthesis import (
    MASK_THRESHOLD,
    SCALES,
    altered_texture,
    anomaly_mask,
    perlin_noise,
    synthesise,
)

# --- synthetic anomalies ---------------------------------------------------------------------------------------


def test_perlin_noise_is_seeded_zero_on_the_lattice_and_bounded():
    first = perlin_noise((40, 24), (4, 3), np.random.default_rng(7))
    assert first.shape == (40, 24) and first.dtype == np.float32
    assert np.array_equal(first, perlin_noise((40, 24), (4, 3), np.random.default_rng(7)))
    assert not np.array_equal(first, perlin_noise((40, 24), (4, 3), np.random.default_rng(8)))
    # gradient noise is 0 at every lattice point: rows 0, 10, 20, 30 and columns 0, 8, 16
    assert np.abs(first[::10, ::8]).max() < 1e-6
    assert np.abs(first).max() <= 1  # 2-D gradient noise stays within +-sqrt(1/2); scaled by sqrt(2)


def test_anomaly_masks_are_binary_of_the_image_shape_seeded_and_cover_a_few_per_cent():
    masks = [anomaly_mask((64, 48), np.random.default_rng(seed)) for seed in range(300)]
    assert all(m.shape == (64, 48) and set(np.unique(m)) <= {0.0, 1.0} for m in masks)
    assert np.array_equal(masks[5], anomaly_mask((64, 48), np.random.default_rng(5)))
    coverage = np.array([m.mean() for m in masks])
    assert 0.02 < np.median(coverage) < 0.12 and coverage.max() < 0.5  # a defect, not the whole part
    assert (coverage > 0).mean() > 0.8  # most draws outline something
    replay = np.random.default_rng(5)  # the same draws: two periods, then the noise
    periods = (int(replay.choice(SCALES)), int(replay.choice(SCALES)))
    assert np.array_equal(masks[5], perlin_noise((64, 48), periods, replay) > MASK_THRESHOLD)


def test_synthesis_changes_only_the_masked_pixels_and_sometimes_none():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3)).astype(np.float32)
    texture = rng.random((32, 32, 3)).astype(np.float32)
    untouched, empty = synthesise(image, texture, np.random.default_rng(1), share=0.0)
    assert untouched is image and not empty.any()
    for seed in range(20):
        altered, mask = synthesise(image, texture, np.random.default_rng(seed), share=1.0)
        outside = mask == 0
        assert np.array_equal(altered[outside], image[outside])
        assert altered.min() >= 0 and altered.max() <= 1
    shares = [synthesise(image, texture, np.random.default_rng(s))[1].any() for s in range(200)]
    assert 0.3 < np.mean(shares) < 0.6  # half get an anomaly; a few masks come out empty


def test_a_texture_keeps_its_shape_and_range():
    patch = np.random.default_rng(0).random((16, 12, 3)).astype(np.float32)
    for seed in range(10):
        texture = altered_texture(patch, np.random.default_rng(seed))
        assert texture.shape == patch.shape and 0 <= texture.min() and texture.max() <= 1


# --- losses ----------------------------------------------------------------------------------------------------

def test_ssim_and_reconstruction_loss_by_hand():
    from defect_tf.anomaly.draem.losses import SSIM_C1, reconstruction_loss, ssim_loss, ssim_map

    a = np.full((1, 24, 24, 1), 0.2, np.float32)
    b = np.full((1, 24, 24, 1), 0.6, np.float32)
    assert abs(float(ssim_loss(a, a))) < 1e-5
    # constant images: no variance, so SSIM = (2 * 0.2 * 0.6 + C1) / (0.2^2 + 0.6^2 + C1) away from the edges
    expected = (2 * 0.2 * 0.6 + SSIM_C1) / (0.04 + 0.36 + SSIM_C1)
    assert float(ssim_map(a, b)[0, 12, 12, 0]) == pytest.approx(expected, abs=1e-4)
    # L2 + SSIM loss: 0.4^2 + (1 - mean SSIM), the mean over the map with its zero-padded edges
    mean_ssim = float(np.mean(ssim_map(a, b)))
    assert float(reconstruction_loss(a, b)) == pytest.approx(0.16 + 1 - mean_ssim, abs=1e-5)


def test_focal_loss_by_hand():
    from defect_tf.anomaly.draem.losses import focal_loss

    mask = np.array([1, 0, 1, 0], np.float32).reshape(1, 2, 2, 1)
    logits = np.array([np.log(9), np.log(9), 0.0, -np.log(3)], np.float32).reshape(1, 2, 2, 1)
    # p(defect) = 0.9, 0.9, 0.5, 0.25 -> p of the truth = 0.9, 0.1, 0.5, 0.75
    terms = [0.1**2 * -np.log(0.9), 0.9**2 * -np.log(0.1), 0.5**2 * -np.log(0.5), 0.25**2 * -np.log(0.75)]
    assert float(focal_loss(mask, logits)) == pytest.approx(np.mean(terms), rel=1e-5)
    assert float(focal_loss(mask, logits, gamma=0.0)) == pytest.approx(
        np.mean(-np.log([0.9, 0.1, 0.5, 0.75])), rel=1e-5)  # gamma 0: cross-entropy
    assert np.isfinite(float(focal_loss(mask, mask * 1e4 - 5e3)))  # saturated logits stay finite


# --- a tiny run ------------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_draem_trains_is_interrupted_resumes_from_its_epoch_and_saves_a_bundle(tiles, tmp_path, monkeypatch, capsys):
    from defect_tf.anomaly.draem import model as draem
    from defect_tf.anomaly.images import read_photo
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.apps import train
    from defect_tf.errors import DefectTFError

    output = tmp_path / "localizer"
    command = ["--task", "anomaly", "--model", "draem", "--data", str(tiles / "images"), "--labels",
               str(tiles / "labels.txt"), "--split-file", str(tiles / "split.txt"), "--masks", str(tiles / "masks"),
               "--image-size", "32", "--epochs", "3", "--output", str(output)]
    saved = draem.EpochSaved.on_epoch_end

    def stop_after_the_second(self, epoch, logs=None):
        saved(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(draem.EpochSaved, "on_epoch_end", stop_after_the_second)
    assert train.main(command) == 130
    assert capsys.readouterr().err.endswith(
        "interrupted; the last completed epoch (2) is saved. Continue from it with: python train.py --task anomaly "
        f"--resume --output {output}\n")
    monkeypatch.undo()
    trained_before = json.loads((output / "checkpoint" / "state.json").read_text())["seconds"]

    assert train.main(["--task", "anomaly", "--resume", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "resuming from epoch 2 of 3" in printed and "epoch 3/3: loss" in printed and "epoch 1/3" not in printed
    assert not (output / "checkpoint").exists()
    localizer = load_localizer(output)
    assert localizer.metadata.model == "draem" and localizer.metadata.settings["epochs"] == 3
    anomaly_map = localizer.model.anomaly_map(read_photo(tiles / "images" / "tile_31.png"))
    assert anomaly_map.shape == (48, 64) and 0 <= anomaly_map.min() and anomaly_map.max() <= 1
    for height, width in [(40, 100), (70, 50), (33, 90), (90, 33), (64, 64)]:  # photos of many sizes, one model
        photo = np.full((height, width, 3), 120, np.uint8)
        assert localizer.model.anomaly_map(photo).shape == (height, width)
    report = json.loads((output / "metrics.json").read_text())
    assert (report["photos"], report["defective"]) == (12, 6) and 0 <= report["pixel_auroc"] <= 1
    assert report["fit_seconds"] > trained_before > 0  # the time before the interruption counts
    with pytest.raises(DefectTFError, match="nothing to resume"):
        train.main(["--task", "anomaly", "--resume", "--output", str(output)])

    from defect_tf.export.localizer import export_localizer

    record = export_localizer(output, log=lambda line: None)  # its upsampling takes sides known only at run time
    assert record.parity["images"] == 12 and record.parity["decisions_changed"] == 0
    assert record.parity["max_relative_difference"] <= 1e-4
    exported = load_localizer(output)  # auto: the ONNX export
    assert exported.runtime.startswith("ONNX Runtime") and not hasattr(exported.model, "network")
    rng = np.random.default_rng(0)
    for height, width in [(40, 100), (70, 50), (64, 64)]:
        photo = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        np.testing.assert_allclose(exported.model.anomaly_map(photo), localizer.model.anomaly_map(photo), atol=1e-5)
