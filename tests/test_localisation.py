import numpy as np
import pytest

from defect_tf.bundle.store import load_bundle
from defect_tf.data.demo import mask_path
from defect_tf.data.labels import parse_labels
from defect_tf.explain.heatmap_scores import heatmap_iou, peak_inside, score_localisation


def test_peak_inside_is_read_at_the_mask_resolution():
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[1, 2] = 1.0  # cell (1, 2) covers rows 8-15, columns 16-23 of a 32 x 32 mask
    mask = np.zeros((32, 32), bool)
    mask[8:16, 16:24] = True
    assert peak_inside(heatmap, mask)
    assert not peak_inside(heatmap, np.roll(mask, 12, axis=1))


def test_iou_of_the_half_peak_region_with_the_mask():
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[:2, :2] = 1.0  # top-left quarter, exactly, once upsampled (cubic overshoot is clipped)
    mask = np.zeros((32, 32), bool)
    mask[:16, :32] = True  # the top half
    assert heatmap_iou(heatmap, mask) == pytest.approx(0.5, abs=0.04)
    assert heatmap_iou(heatmap, np.zeros_like(mask)) == 0.0


@pytest.mark.slow
def test_heatmaps_of_the_demo_model_point_at_the_defects(demo_run):
    """On `make demo`'s model: the heatmap peak is inside the true region for >= 80% of correctly detected defects."""
    root, output, _, _ = demo_run
    bundle = load_bundle(output)
    table = parse_labels(root / "labels.txt")
    test_images = set(bundle.metadata.split["test"])
    table = table.only(test_images)
    scores = score_localisation(bundle, root / "images", table, lambda image, name: mask_path(root, image, name))
    print(f"demo localisation: {scores}")
    assert scores["overall"]["defects"] >= 150  # most of the test split's ~220 defects are detected
    assert scores["overall"]["peak_inside"] >= 0.80
