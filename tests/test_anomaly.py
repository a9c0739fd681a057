"""Anomaly localisation: the metrics against hand-computed cases and brute force, the coreset against brute force,
thresholds, outlines and regions, the localiser bundle, the two-stage pipeline's routing, and a tiny end-to-end
run (fit on intact photos, outline an unseen defect)."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from defect_tf.anomaly.calibration import F1_RULE, INTACT_RULE, PIXEL_QUANTILE, best_f1_cut, calibrate
from defect_tf.anomaly.images import working_size
from defect_tf.anomaly.patchcore.coreset import covering_radius, greedy_coreset, nearest_distances
from defect_tf.anomaly.regions import defect_mask, find_regions
from defect_tf.errors import BundleError, DefectTFError
from defect_tf.evaluate.localisation import (
    image_auroc,
    overlap_scores,
    pixel_auroc,
    pixel_rankings,
    pro_curve,
    pro_score,
)

# --- metrics ---------------------------------------------------------------------------------------------------

def test_pro_of_a_hand_made_case():
    """Region A (2 px) is found at every cut; region B (2 px) is half found once one negative pixel (of 10) is
    over the cut: the curve is 0.5 up to FPR 0.1, then 0.75 -> area (0.05 + 0.15) / 0.3 = 2/3."""
    maps = [np.array([[0.95, 0.95, 0.0, 0.85, 0.05]]), (np.arange(1, 10) / 10)[None]]
    masks = [np.array([[1, 1, 0, 1, 1]], bool), np.zeros((1, 9), bool)]
    assert pro_score(maps, masks) == pytest.approx(2 / 3, abs=1e-12)


def _brute_force_pro(maps, masks, max_fpr):
    """Every distinct score as a cut, regions labelled afresh at each: the definition, slowly."""
    scores = np.concatenate([m.ravel() for m in maps])
    negatives = np.concatenate([m[~t] for m, t in zip(maps, masks)])
    points = [(0.0, 0.0)]
    for cut in np.unique(scores)[::-1]:
        overlaps = []
        for m, t in zip(maps, masks):
            labelled, count = ndimage.label(t)
            overlaps += [np.mean(m[labelled == k] >= cut) for k in range(1, count + 1)]
        points.append((np.mean(negatives >= cut), np.mean(overlaps)))
    fpr, pro = map(np.asarray, zip(*sorted(points)))
    keep = fpr <= max_fpr
    after = np.argmax(~keep)  # the first point past the limit: the curve there, on the segment to it
    limit_pro = pro[after - 1] + (pro[after] - pro[after - 1]) * (max_fpr - fpr[after - 1]) / (fpr[after] - fpr[after - 1])
    return np.trapezoid(np.r_[pro[keep], limit_pro], np.r_[fpr[keep], max_fpr]) / max_fpr


def test_pro_matches_the_definition_computed_by_brute_force():
    rng = np.random.default_rng(0)
    maps = [rng.random((6, 7)).astype(np.float32) for _ in range(3)]
    masks = [np.zeros((6, 7), bool) for _ in range(3)]
    masks[0][1:3, 1:3] = True
    masks[1][4:, 5:] = True
    masks[1][0, 0] = True
    for m, t in zip(maps, masks):
        m[t] += 0.3  # defects score higher, but not always
    assert pro_score(maps, masks) == pytest.approx(_brute_force_pro(maps, masks, 0.3), abs=1e-9)
    fpr, overlap = pro_curve(maps, masks)
    assert fpr.min() == 0 and fpr.max() == 1 and overlap.max() == 1


def test_pixel_and_image_auroc_hand_made_and_against_scikit_learn():
    # defect pixels 0.35, 0.8 against intact 0.1, 0.4: three of four pairs ordered right
    assert pixel_auroc([np.array([[0.1, 0.4], [0.35, 0.8]])], [np.array([[0, 0], [1, 1]], bool)]) == 0.75
    rng = np.random.default_rng(1)
    maps, masks = [rng.random((5, 4)) for _ in range(4)], [rng.random((5, 4)) > 0.7 for _ in range(4)]
    expected = roc_auc_score(np.concatenate([t.ravel() for t in masks]), np.concatenate([m.ravel() for m in maps]))
    assert pixel_auroc(maps, masks) == pytest.approx(expected)
    assert image_auroc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.4]) == 0.75
    assert np.isnan(image_auroc([0, 0], [0.1, 0.2]))


def test_pixel_rankingss_into_defects_against_intact_photos_and_within_their_own():
    from defect_tf.anomaly.evaluation import Scored, describe, summarise

    # photo 1 intact (0, 1); photo 2 a defect pixel 2 beside a clean 3; photo 3 defective, its mask empty (1.5, 0.5)
    maps = [np.array([[0.0, 1.0]]), np.array([[2.0, 3.0]]), np.array([[1.5, 0.5]])]
    masks = [np.zeros((1, 2), bool), np.array([[True, False]]), np.zeros((1, 2), bool)]
    # the defect outranks both intact pixels, but only 2 of its defective photos' 3 clean ones; pooled: 4 of 5,
    # the halves' mean weighted by their 2 and 3 pixels
    # AP: ranked 3, 2, 1.5, 1, 0.5, 0, the one defect pixel comes second: precision 1/2 at its recall of 1
    halves = pixel_rankings(maps, masks, [False, True, True])
    assert halves == {"pooled": pytest.approx(4 / 5), "intact_photos": 1.0, "own_photos": pytest.approx(2 / 3),
                      "average_precision": 0.5}
    assert pixel_auroc(maps, masks) == pytest.approx(4 / 5)
    assert pixel_auroc(maps, masks) == pytest.approx((2 * halves["intact_photos"] + 3 * halves["own_photos"]) / 5)
    # against scikit-learn on random maps with ties: each half is the ROC AUC of the defect pixels and that half
    rng = np.random.default_rng(3)
    tied = [rng.integers(0, 6, (4, 5)).astype(float) for _ in range(6)]
    truth = [rng.random((4, 5)) > 0.6 if d else np.zeros((4, 5), bool) for d in (0, 1, 1, 0, 1, 1)]
    defective = [bool(m.any()) for m in truth]
    defects = np.concatenate([m[t] for m, t in zip(tied, truth)])
    for half, others in (("intact_photos", [m.ravel() for m, d in zip(tied, defective) if not d]),
                         ("own_photos", [m[~t] for m, t, d in zip(tied, truth, defective) if d])):
        others = np.concatenate(others)
        expected = roc_auc_score(np.r_[np.ones(len(defects)), np.zeros(len(others))], np.r_[defects, others])
        assert pixel_rankings(tied, truth, defective)[half] == pytest.approx(expected, abs=1e-12)
    every_truth, every_score = np.concatenate([t.ravel() for t in truth]), np.concatenate([m.ravel() for m in tied])
    ranked = pixel_rankings(tied, truth, defective)
    assert ranked["pooled"] == pytest.approx(roc_auc_score(every_truth, every_score), abs=1e-12)
    assert ranked["average_precision"] == pytest.approx(average_precision_score(every_truth, every_score), abs=1e-12)
    scored = Scored()
    for name, label, anomaly_map, mask in zip("abc", (False, True, True), maps, masks):
        scored.add(name, label, float(anomaly_map.max()), label, anomaly_map, mask, mask)
    report = summarise(scored)
    assert (report["pixel_auroc_intact_photos"], report["pixel_auroc_own_photos"]) == (1.0, pytest.approx(2 / 3))
    assert "pixel auroc 0.800 (against intact photos 1.000, within defective photos 0.667)" in describe(report)
    assert "image auroc 1.000 (95% interval 0.283-1.000)" in describe(report)  # 3 photos cannot prove 1
    assert report["pixel_ap"] == 0.5 and "pixel ap 0.500" in describe(report)


def test_iou_dice_and_coverage_hand_made():
    found, truth = [np.array([[1, 1, 0, 0]])], [np.array([[0, 1, 1, 0]], bool)]
    assert overlap_scores(found, truth) == {"iou": 1 / 3, "dice": 0.5, "coverage": 0.5}
    empty = overlap_scores([np.zeros((2, 2))], [np.zeros((2, 2), bool)])
    assert np.isnan(empty["iou"]) and np.isnan(empty["coverage"])


def test_coverage_counts_each_defect_region_equally():
    # photo 1: a 1-pixel defect found and a 3-pixel one a third inside; photo 2: a 2-pixel defect missed, and a
    # false alarm elsewhere that coverage does not count. Regions: 1, 1/3, 0 -> mean 4/9; IoU pools the pixels:
    # 2 found of 6 true, 2 false alarms -> 2 / 8
    found = [np.array([[1, 0, 1, 0, 0, 0]]), np.array([[0, 0, 0, 1, 1, 0]])]
    truth = [np.array([[1, 0, 1, 1, 1, 0]], bool), np.array([[1, 1, 0, 0, 0, 0]], bool)]
    scores = overlap_scores(found, truth)
    assert scores["coverage"] == pytest.approx(4 / 9, abs=1e-12)
    assert scores["iou"] == pytest.approx(2 / 8, abs=1e-12)


def test_the_outline_gallery_shows_each_type_at_its_worst_median_and_best_and_the_worst_false_alarm():
    from defect_tf.anomaly.evaluation import Scored, shown_photos

    scored, masks = Scored(), {}
    truth = np.zeros((2, 5), bool)
    truth[0] = True  # 5 defect pixels
    for name, kind, found in (("a", "hole", 1), ("b", "hole", 4), ("c", "hole", 2), ("d", "hole", 5),
                              ("e", "scratch", 3)):
        outline = np.zeros((2, 5), bool)
        outline[0, :found] = True
        scored.add(name, True, 1.0, True, np.zeros((2, 5)), truth, outline)
        masks[name] = kind
    for name, alarm in (("f", 0), ("g", 2), ("h", 1)):  # intact photos, outlines of 0, 2 and 1 pixels
        outline = np.zeros((2, 5), bool)
        outline[1, :alarm] = True
        scored.add(name, False, 0.0, bool(alarm), np.zeros((2, 5)), np.zeros((2, 5), bool), outline)
    # holes covered 20%, 80%, 40%, 100%: worst a, median (index 2 of the sorted 4) b, best d; one scratch, once
    assert shown_photos(scored, masks) == [(0, "hole: 20% covered"), (1, "hole: 80% covered"),
                                           (3, "hole: 100% covered"), (4, "scratch: 60% covered"),
                                           (6, "intact: 20.0% outlined")]
    intact_only = Scored()
    intact_only.add("h", False, 1.0, True, np.zeros((2, 5)), np.zeros((2, 5), bool), np.ones((2, 5), bool))
    assert shown_photos(intact_only) == []  # nothing to compare an outline with


def test_a_report_without_defective_photos_counts_false_alarms_rather_than_an_f1_of_zero():
    from defect_tf.anomaly.evaluation import Scored, describe, summarise

    scored = Scored()
    for name, called in (("a", False), ("b", True), ("c", False)):
        scored.add(name, False, 0.5, called)
    report = summarise(scored)
    assert (report["photos"], report["defective"], report["called_defective"]) == (3, 0, 1)
    assert describe(report) == "  all            3 photos (0 defective): 1 called defective (false alarms)"


def test_a_report_gives_the_decisions_f1_precision_and_recall_with_their_intervals():
    from defect_tf.anomaly.evaluation import Scored, describe, summarise

    scored = Scored()  # 3 defective photos, 2 of them called defective, and 1 false alarm of 2 intact photos
    for name, label, called in (("a", False, False), ("b", False, True), ("c", True, True), ("d", True, True),
                                ("e", True, False)):
        scored.add(name, label, float(called), called)
    report = summarise(scored)
    # precision 2 of 3 and recall 2 of 3; Wilson's 95% interval of 2 of 3 is 0.2077-0.9385 (z = 1.96)
    assert (report["precision"], report["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (report["recall_low"], report["recall_high"]) == pytest.approx((0.2076596, 0.9385081), abs=1e-6)
    assert (report["precision_low"], report["precision_high"]) == pytest.approx((0.2076596, 0.9385081), abs=1e-6)
    # F1 2/3: 2 true positives among the 4 photos defective or called so (J = 1/2, F1 = 2J / (1 + J)); Wilson's
    # interval of 2 of 4 is 0.1500-0.8500, so F1's is 2 * 0.1500 / 1.1500 = 0.2609 to 2 * 0.8500 / 1.8500 = 0.9189
    assert (report["f1_low"], report["f1_high"]) == pytest.approx((0.2609285, 0.9188961), abs=1e-6)
    assert ("f1 0.667 (95% interval 0.261-0.919; precision 0.667, 95% interval 0.208-0.939; recall 0.667, "
            "95% interval 0.208-0.939)" in describe(report))
    # a report written before the intervals prints its F1 alone
    old = {key: value for key, value in report.items() if not key.endswith(("_low", "_high"))}
    # image AUROC: 2 of 6 pairs won, 3 tied: 3.5 / 6. Image AP: the three photos called defective tie (2 of them
    # defective: precision 2/3 at recall 2/3), then all five (precision 3/5 at recall 1): 2/3 * 2/3 + 1/3 * 3/5
    assert describe(old).endswith("image auroc 0.583, image ap 0.644, f1 0.667")
    assert report["image_ap"] == pytest.approx(2 / 3 * 2 / 3 + 1 / 3 * 3 / 5)
    # its interval: Wilson's of 0.6444 of the 3 defective photos (z = 1.96): centre 0.5633, half-width 0.3677
    assert (report["image_ap_low"], report["image_ap_high"]) == pytest.approx((0.1955933, 0.9310853), abs=1e-6)


def test_a_map_and_mask_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc([np.zeros((2, 3))], [np.zeros((3, 2), bool)])


# --- coreset ---------------------------------------------------------------------------------------------------

def test_the_coreset_is_k_center_greedy_and_within_twice_the_optimal_radius():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(12, 3)).astype(np.float32)
    chosen = greedy_coreset(rows, 4, projection=None, seed=5)
    # the rule, step by step: each next row is the farthest from those chosen so far
    for step in range(1, 4):
        distances = np.min([np.linalg.norm(rows - rows[c], axis=1) for c in chosen[:step]], axis=0)
        assert chosen[step] == np.argmax(distances)
    optimal = min(covering_radius(rows, np.array(subset)) for subset in itertools.combinations(range(12), 4))
    assert optimal <= covering_radius(rows, chosen) <= 2 * optimal + 1e-6
    assert len(set(chosen.tolist())) == 4


def test_nearest_distances_against_brute_force_in_chunks():
    rng = np.random.default_rng(3)
    queries, bank = rng.normal(size=(50, 8)), rng.normal(size=(30, 8))
    expected = ((queries[:, None] - bank[None]) ** 2).sum(-1).min(1)
    assert np.allclose(nearest_distances(queries, bank, chunk=7), expected, rtol=1e-5, atol=1e-5)


def test_photos_kept_out_of_the_memory_bank_for_the_places_are_evenly_spread_and_bounded():
    from defect_tf.anomaly.patchcore.model import held_out

    assert held_out(19, 0.1) == {1, 5, 9, 13, 17}  # (i + 0.5) * 19 / 5: at least 5, spread over the set
    assert held_out(14, 0.1) == set() and held_out(200, 0.0) == set()  # too few photos, or turned off
    assert held_out(300, 0.1) == {int((i + 0.5) * 10) for i in range(30)}
    assert len(held_out(5000, 0.1)) == 50  # at most 50


def test_place_statistics_measure_a_distance_against_intact_photos_at_the_same_place():
    from defect_tf.anomaly.patchcore.maps import PLACE_GRID, by_place, place_statistics

    stats = place_statistics([np.full((4, 6), 1.0), np.full((4, 6), 3.0)])  # mean 2, spread 1 everywhere
    assert np.array(stats["place_mean"]).shape == (PLACE_GRID, PLACE_GRID)
    assert np.allclose(by_place(np.full((4, 6), 4.0), stats), 2.0)  # (4 - 2) / 1
    assert np.array_equal(by_place(np.full((4, 6), 4.0), {}), np.full((4, 6), 4.0))  # no statistics: raw

    # intact photos all score high on their borders (the backbone's padding, a tile's chamfer): a defect inside
    # scores less than any border by raw distance, but more than any other place once measured by place
    rng = np.random.default_rng(0)
    intact = []
    for _ in range(20):
        cells = rng.normal(10, 1, (16, 24))
        cells[[0, -1], :] += 20
        cells[:, [0, -1]] += 20
        intact.append(cells)
    photo = intact[0].copy()
    photo[8, 12] += 8
    measured = by_place(photo, place_statistics(intact[1:]))
    assert photo.max() > photo[8, 12] and np.unravel_index(measured.argmax(), measured.shape) == (8, 12)


def test_patchcore_smooths_its_map_by_its_own_setting():
    from defect_tf.anomaly.maps import resize_map, smooth
    from defect_tf.anomaly.patchcore.maps import PatchCoreMaps

    level = np.zeros((1, 4, 4, 2), np.float32)
    level[0, 1, 1] = [3.0, 4.0]  # 5 from the bank's one row (0, 0); every other cell 0
    distances = np.zeros((4, 4), np.float32)
    distances[1, 1] = 5.0
    inputs = np.zeros((32, 32, 3), np.float32)

    def map_with(settings: dict) -> np.ndarray:
        model = PatchCoreMaps(32, {"neighbourhood": 1, **settings}, bank=np.zeros((1, 2), np.float32))
        return model.map_from([level], inputs)

    unsmoothed = map_with({"smoothing": 0})
    assert np.array_equal(unsmoothed, resize_map(distances, (32, 32)))
    assert np.allclose(map_with({"smoothing": 8}), smooth(unsmoothed, 8.0))
    assert np.allclose(map_with({}), smooth(unsmoothed, 4.0))  # the default: 4 px
    with pytest.raises(BundleError, match="smoothing must be a number of pixels from 0 to 64, not -1"):
        map_with({"smoothing": -1})


# --- the defect head ---------------------------------------------------------------------------------------------

def test_the_defect_heads_features_hold_the_cell_its_surroundings_and_its_contrast_to_row_and_column():
    from defect_tf.anomaly.patchcore.head import cell_mask, context_features

    cells = np.array([[[1.0], [3.0]], [[5.0], [7.0]]])  # row means 2 and 6, column means 3 and 5
    np.testing.assert_array_equal(context_features(cells, 1),
                                  [[1, 1, -1, -2], [3, 3, 1, -2], [5, 5, -1, 2], [7, 7, 1, 2]])
    # 3 x 3 around the first cell, borders repeated: 1, 1, 3 / 1, 1, 3 / 5, 5, 7
    assert context_features(cells, 3)[0, 1] == pytest.approx(27 / 9)
    band = np.zeros((4, 4), bool)
    band[:2] = True
    np.testing.assert_array_equal(cell_mask(band, (2, 2)), [[True, True], [False, False]])


def _banded_cells(rng, count):
    """Photos of 8 x 8 cells with 4 noisy values; rows 2-4 of some are a band whose first value is raised."""
    cells, masks = [], []
    for index in range(count):
        photo = rng.normal(size=(8, 8, 4)).astype(np.float32)
        mask = np.zeros((8, 8), bool)
        if index % 2:
            mask[2:5] = True
            photo[2:5, :, 0] += 3.0
        cells.append(photo)
        masks.append(mask)
    return cells, masks


def test_a_defect_head_learns_the_band_its_masks_show():
    from defect_tf.anomaly.patchcore.head import DefectHead

    rng = np.random.default_rng(0)
    cells, masks = _banded_cells(rng, 8)
    head = DefectHead.fit(cells, masks, dims=4, context=3)
    new_cells, new_masks = _banded_cells(rng, 2)
    unseen, truth = new_cells[1], new_masks[1]  # the second photo holds a band
    scores = head.cell_scores(unseen)
    assert scores.shape == (8, 8) and scores.dtype == np.float32
    assert roc_auc_score(truth.ravel(), scores.ravel()) > 0.95
    assert (scores[truth] > 0).mean() > 0.9 and (scores[~truth] < 0).mean() > 0.9


def test_each_photo_is_answered_by_a_head_that_did_not_learn_from_it():
    from defect_tf.anomaly.patchcore.head import held_out_heads

    cells, masks = _banded_cells(np.random.default_rng(1), 6)
    settings = {"dims": 4, "context": 3}
    heads, final = held_out_heads(dict(enumerate(cells)), dict(enumerate(masks)), 3, settings)
    assert len({id(head) for head in heads.values()}) == 3 and final not in heads.values()
    for photo in range(6):  # another mask for one photo changes every head but the one that answers it
        changed = dict(enumerate(masks))
        changed[photo] = ~masks[photo]
        heads_then, final_then = held_out_heads(dict(enumerate(cells)), changed, 3, settings)
        np.testing.assert_array_equal(heads_then[photo].cell_scores(cells[photo]),
                                      heads[photo].cell_scores(cells[photo]))
        assert not np.array_equal(final_then.cell_scores(cells[photo]), final.cell_scores(cells[photo]))


def test_the_head_adds_to_the_bank_map_only_above_its_floor():
    from defect_tf.anomaly.patchcore.head import HEAD_DEFAULTS, outline_cells

    place, head = np.array([[1.0, 2.0, 3.0]]), np.array([[-3.0, 4.0, 0.0]])
    np.testing.assert_array_equal(outline_cells(place, head, 0.5, 0.0), [[1.0, 4.0, 3.0]])  # never below the bank
    np.testing.assert_array_equal(outline_cells(place, head, 0.5, -1.0), [[0.5, 4.0, 3.0]])
    np.testing.assert_array_equal(outline_cells(place, head, 0.5, None), [[-0.5, 4.0, 3.0]])  # the whole head
    assert HEAD_DEFAULTS["floor"] == 0.0


def test_a_head_that_knows_nothing_in_a_photo_leaves_the_bank_map_unless_its_bundle_predates_the_floor():
    from types import SimpleNamespace

    from defect_tf.anomaly.patchcore.maps import DEFAULTS, PatchCoreMaps

    # a head that calls every cell intact (score -2), as one trained without a defect type answers that type
    unknown = SimpleNamespace(cell_scores=lambda cells: np.full(cells.shape[:2], -2.0, np.float32))
    cells = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    settings = {**DEFAULTS, "smoothing": 0, "head": {"weight": 0.5, "context": 7, "floor": 0.0}}
    bank = np.random.default_rng(1).random((20, 3)).astype(np.float32)
    outline, bank_map = PatchCoreMaps(64, settings, bank=bank, head=unknown).cell_maps(cells, (8, 10))
    np.testing.assert_array_equal(outline, bank_map)
    before = {**settings, "head": {"weight": 0.5, "context": 7}}  # a localizer/3 bundle written without a floor
    outline, bank_map = PatchCoreMaps(64, before, bank=bank, head=unknown).cell_maps(cells, (8, 10))
    np.testing.assert_allclose(outline, bank_map - 1.0, atol=1e-6)
    for floor in (0.5, "0", True):
        with pytest.raises(BundleError, match="a floor, if any, from -100 to 0"):
            PatchCoreMaps(64, {**settings, "head": {"weight": 0.5, "context": 7, "floor": floor}}, bank=bank)


def test_a_defect_head_file_is_read_without_pickle_and_checked(tmp_path):
    from defect_tf.anomaly.patchcore.head import HEAD_FILE, DefectHead, read_head

    cells, masks = _banded_cells(np.random.default_rng(2), 4)
    head = DefectHead.fit(cells, masks, dims=3, context=3)
    head.save(tmp_path / HEAD_FILE)
    read = read_head(tmp_path, features=4, context=3)
    np.testing.assert_array_equal(read.cell_scores(cells[0]), head.cell_scores(cells[0]))
    with pytest.raises(BundleError, match="not a defect head for 5-value cells"):
        read_head(tmp_path, features=5, context=3)
    np.savez(tmp_path / HEAD_FILE, **{**head.arrays, "coef": np.array([object()] * 12)})
    with pytest.raises(BundleError, match="cannot read the PatchCore defect head"):  # an object array: pickle
        read_head(tmp_path, features=4, context=3)
    np.savez(tmp_path / HEAD_FILE, **{**head.arrays, "feature_spread": np.zeros(12, np.float32)})
    with pytest.raises(BundleError, match="not a defect head"):
        read_head(tmp_path, features=4, context=3)


def test_a_model_that_learns_nothing_from_masks_does_not_read_the_validation_photos_for_them(monkeypatch):
    from types import SimpleNamespace

    from defect_tf.anomaly import training
    from defect_tf.anomaly.draem.model import Draem

    def refuse(*args):
        raise AssertionError("the validation photos were read for a model that learns nothing from masks")

    monkeypatch.setattr(training, "_photos", refuse)
    photos = SimpleNamespace(rows=lambda part, defective: [0], images=["a.png"], masks={"a.png": Path("a.png")})
    assert not Draem.learns_from_masks
    assert training.learnt_defects(SimpleNamespace(learns_from_masks=False), photos, print) is None


# --- thresholds and outlines -----------------------------------------------------------------------------------

def test_thresholds_from_intact_photos_only_and_with_defective_ones():
    intact = [np.full((4, 4), 0.2), np.arange(16, dtype=float).reshape(4, 4) / 20]
    thresholds = calibrate(intact, [m.max() for m in intact])
    pixels = np.concatenate([m.ravel() for m in intact])
    assert (thresholds.image, thresholds.rule) == (0.75, INTACT_RULE)
    assert thresholds.pixel == pytest.approx(np.quantile(pixels, PIXEL_QUANTILE), rel=1e-6)
    # a defective photo scoring 0.9 sets the image cut by F1 (0.9: one true positive, no false alarm); its pixels
    # leave the outline's cut where the intact ones put it
    defect = np.zeros((4, 4))
    defect[0, :2] = 0.9
    with_defects = calibrate(intact, [m.max() for m in intact], [defect.max()])
    assert (with_defects.rule, with_defects.image) == (F1_RULE, 0.9)
    assert with_defects.pixel == thresholds.pixel


def test_best_f1_cut_hand_made():
    # cuts: 0.9 -> F1 2/3 (1 TP of 2 positives); 0.7 -> 2 TP, 0 FP: F1 1; 0.5 -> 2 TP, 1 FP: 0.8
    assert best_f1_cut(np.array([0.9, 0.7, 0.5, 0.1]), np.array([1, 1, 0, 0])) == 0.7


def test_outline_cleans_specks_and_reports_regions_with_boxes_and_areas():
    anomaly_map = np.zeros((100, 120), np.float32)
    anomaly_map[10:30, 20:50] = 1.0  # a 20 x 30 defect
    anomaly_map[60:90, 80:90] = 0.75  # a 30 x 10 defect
    anomaly_map[50, 5] = 1.0  # a one-pixel speck: noise
    mask = defect_mask(anomaly_map, 0.5)
    regions = find_regions(mask, anomaly_map)
    assert [(r.box, r.area, r.peak) for r in regions] == [((20, 10, 50, 30), 600, 1.0), ((80, 60, 90, 90), 300, 0.75)]
    assert regions[0].share == 600 / 12000 and not mask[50, 5]
    assert [r.box_text() for r in regions] == ["x 20-49, y 10-29", "x 80-89, y 60-89"]  # printed: last pixels


def test_working_size_keeps_the_aspect_ratio_in_multiples_of_32():
    assert working_size(270, 324, 256) == (256, 320)  # 324 * 256 / 270 = 307 -> 320
    assert working_size(400, 100, 64) == (256, 64)  # 4:1, the cap
    assert working_size(1000, 100, 64) == (256, 64)  # longer than 4:1 is cut to it


# --- the two stages --------------------------------------------------------------------------------------------

class _Classifier:
    """Stage 1 stand-in: calls the photos named in `damaged` damaged."""

    def __init__(self, damaged, task="binary"):
        from defect_tf.bundle.metadata import BundleMetadata

        self.damaged = set(damaged)
        self.metadata = BundleMetadata(attributes=["defect"], image_size=32, thresholds=[0.5], task=task)

    def predict(self, paths):
        from defect_tf.runtime.predictions import Prediction

        return [Prediction(p, {"defect": 0.9 if p in self.damaged else 0.1},
                           ["defect"] if p in self.damaged else []) for p in paths], []


class _Localizer:
    """Stage 2 stand-in that records every photo it is asked about."""

    def __init__(self):
        self.calls = []

    def locate(self, photo, outline=None):
        from defect_tf.anomaly.store import Localization

        self.calls.append(outline)
        mask = np.zeros(photo.shape[:2], bool)
        mask[:2, :2] = bool(outline)
        return Localization(0.1, False, np.zeros(photo.shape[:2], np.float32), mask, find_regions(mask, mask))


def _photo(path: Path) -> str:
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path)
    return str(path)


def test_stage_two_runs_only_on_photos_stage_one_calls_damaged(tmp_path):
    from defect_tf.anomaly.pipeline import TwoStage

    good, bad = _photo(tmp_path / "good.png"), _photo(tmp_path / "bad.png")
    localizer = _Localizer()
    answers, errors = TwoStage(_Classifier([bad]), localizer).answer([good, bad])
    assert errors == [] and localizer.calls == [True]  # called once, for the damaged photo, told to outline
    assert answers[0].localization is None and answers[0].to_json()["localization"] is None
    assert answers[1].localization.to_json()["defect_pixels"] == 4


def test_a_multiclass_stage_one_sends_only_defect_classes_on():
    from defect_tf.anomaly.pipeline import stage_one_damaged
    from defect_tf.runtime.predictions import Prediction

    assert not stage_one_damaged(Prediction("a", {}, ["good"]), "multiclass")
    assert stage_one_damaged(Prediction("a", {}, ["scratch"]), "multiclass")
    assert not stage_one_damaged(Prediction("a", {}, []), "multilabel")


def test_without_a_classifier_the_localiser_decides_alone(tmp_path):
    from defect_tf.anomaly.pipeline import TwoStage

    localizer = _Localizer()
    answers, _ = TwoStage(None, localizer).answer([_photo(tmp_path / "a.png")])
    assert localizer.calls == [None] and answers[0].prediction is None


# --- a tiny end-to-end run -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def localizer_output(tiles, tmp_path_factory):
    from defect_tf.apps import train

    output = tmp_path_factory.mktemp("run") / "localizer"
    code = train.main(["--task", "anomaly", "--data", str(tiles / "images"), "--labels", str(tiles / "labels.txt"),
                       "--split-file", str(tiles / "split.txt"), "--masks", str(tiles / "masks"),
                       "--types", str(tiles / "types.txt"), "--image-size", "64", "--coreset-size", "200",
                       "--output", str(output)])
    assert code == 0
    return output


@pytest.mark.integration
def test_a_localiser_fitted_on_intact_photos_finds_and_outlines_unseen_defects(localizer_output, tiles):
    report = json.loads((localizer_output / "metrics.json").read_text())
    assert (report["photos"], report["defective"]) == (12, 6)
    assert report["image_auroc"] == 1.0 and report["pixel_auroc"] > 0.95
    assert report["coverage"] >= 0.8  # of each unseen defect, on average, inside its outline
    assert set(report["per_type"]) == {"hole"}
    assert (localizer_output / "outlines.png").read_bytes().startswith(b"\x89PNG")  # the test photos drawn
    assert (localizer_output / "scores.png").read_bytes().startswith(b"\x89PNG")  # their scores, the threshold
    split = (localizer_output / "split.txt").read_text().split("\n")
    assert sum(line.endswith(" val") for line in split) == 5  # carved from the intact train photos


@pytest.mark.integration
def test_inference_localize_writes_an_overlay_whose_outline_covers_the_defect(localizer_output, tiles, tmp_path,
                                                                             capsys):
    from defect_tf.anomaly.images import read_photo
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.apps import predict

    photo = tiles / "images" / "tile_31.png"
    code = predict.main([str(photo), "--model", str(localizer_output), "--localize", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0 and "defect outlined" in printed and "box x" in printed
    assert (tmp_path / "out" / "tile_31_outline.png").is_file()
    found = load_localizer(localizer_output).locate(read_photo(photo))
    truth = np.asarray(Image.open(tiles / "masks" / "tile_31.png")) > 0
    assert found.defective and found.mask[truth].mean() >= 0.8  # the outline covers the defect
    x0, y0, x1, y1 = found.regions[0].box
    ys, xs = np.nonzero(truth)
    assert x0 <= xs.mean() < x1 and y0 <= ys.mean() < y1


@pytest.mark.integration
def test_the_localiser_bundle_loads_checks_its_files_and_migrates(localizer_output, tiles, tmp_path, monkeypatch):
    import shutil

    from defect_tf.anomaly import metadata as localizer_metadata
    from defect_tf.anomaly.images import read_photo
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.bundle.store import load_bundle

    copy = tmp_path / "copy"
    shutil.copytree(localizer_output, copy)
    photo = read_photo(tiles / "images" / "tile_30.png")
    first = load_localizer(localizer_output).locate(photo)
    assert np.array_equal(load_localizer(copy).locate(photo).anomaly_map, first.anomaly_map)
    with pytest.raises(BundleError, match="anomaly localiser .* not a classifier"):
        load_bundle(copy)

    record_path = copy / "bundle" / "bundle.json"
    record = json.loads(record_path.read_text())
    monkeypatch.setitem(localizer_metadata.MIGRATIONS, "defect_tf.localizer/0",
                        lambda old: {**old, "pixel_threshold": old.pop("outline_threshold"),
                                     "format": localizer_metadata.FORMAT})
    old = {**record, "format": "defect_tf.localizer/0", "outline_threshold": record["pixel_threshold"]}
    del old["pixel_threshold"]
    record_path.write_text(json.dumps(old))
    assert load_localizer(copy).metadata.pixel_threshold == record["pixel_threshold"]

    record_path.write_text(json.dumps({**record, "image_threshold": "high"}))
    with pytest.raises(BundleError, match="image_threshold must be a finite number"):
        load_localizer(copy)
    record_path.write_text(json.dumps(record))
    settings = record["settings"]
    assert np.array(settings["place_mean"]).shape == (16, 16)  # 5 of the 19 intact train photos kept out for them
    second_format = {**record, "format": "defect_tf.localizer/2"}  # before the defect head: a bundle without one
    record_path.write_text(json.dumps(second_format))
    assert np.array_equal(load_localizer(copy).locate(photo).anomaly_map, first.anomaly_map)
    first_format = {**record, "format": "defect_tf.localizer/1",
                    "settings": {k: v for k, v in settings.items() if not k.startswith("place_")}}
    record_path.write_text(json.dumps(first_format))
    raw = load_localizer(copy)  # a bundle of the first format has no place statistics: its map is the raw distance
    assert raw.metadata.format == localizer_metadata.FORMAT and "place_mean" not in raw.model.settings
    assert not np.array_equal(raw.locate(photo).anomaly_map, first.anomaly_map)
    record_path.write_text(json.dumps({**record, "settings": {**settings, "place_spread": [[1.0] * 3] * 16}}))
    with pytest.raises(BundleError, match="place_mean and place_spread must be 16 x 16 grids"):
        load_localizer(copy)
    # a bundle written before the smoothing was a setting answers as before (4 px); a smoothing not a size, refused
    record_path.write_text(json.dumps({**record, "settings": {k: v for k, v in settings.items() if k != "smoothing"}}))
    assert settings["smoothing"] == 4.0
    assert np.array_equal(load_localizer(copy).locate(photo).anomaly_map, first.anomaly_map)
    record_path.write_text(json.dumps({**record, "settings": {**settings, "smoothing": "wide"}}))
    with pytest.raises(BundleError, match="smoothing must be a number of pixels from 0 to 64, not 'wide'"):
        load_localizer(copy)
    record_path.write_text(json.dumps(record))
    bank = np.load(copy / "bundle" / "memory_bank.npy")
    np.save(copy / "bundle" / "memory_bank.npy", bank[::-1])
    with pytest.raises(BundleError, match="memory_bank.npy is not the model"):
        load_localizer(copy)


@pytest.mark.integration
def test_an_exported_localiser_maps_as_keras_does_and_answers_without_tensorflow(localizer_output, tiles, tmp_path):
    import shutil

    from programs import run_counting_imports

    from defect_tf.anomaly.images import read_photo
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.export.localizer import export_localizer

    copy = tmp_path / "copy"
    shutil.copytree(localizer_output, copy)
    record = export_localizer(copy, log=lambda line: None)
    assert (record.file, record.parity["images"], record.parity["source"]) == ("network.onnx", 12, "test")
    assert record.parity["decisions_changed"] == 0 and record.parity["max_relative_difference"] <= 1e-4
    keras, exported = load_localizer(copy, "keras"), load_localizer(copy)  # auto: the export
    assert keras.runtime.startswith("Keras") and exported.runtime.startswith("ONNX Runtime")
    photo = tiles / "images" / "tile_31.png"
    by_keras, by_onnx = keras.locate(read_photo(photo)), exported.locate(read_photo(photo))
    np.testing.assert_allclose(by_onnx.anomaly_map, by_keras.anomaly_map, rtol=0,
                               atol=1e-4 * np.ptp(by_keras.anomaly_map))
    assert by_onnx.defective and np.mean(by_onnx.mask != by_keras.mask) < 1e-3

    status, heavy, printed, stderr = run_counting_imports(
        "predict", [str(photo), "--model", str(copy), "--localize", str(tmp_path / "out"), "--json"])
    assert (status, heavy) == (0, []), stderr[-2000:]
    document = json.loads(printed)
    assert "ONNX Runtime" in document["localizer"]
    assert abs(document["predictions"][0]["localization"]["defect_pixels"] - int(by_keras.mask.sum())) <= 5
    assert (tmp_path / "out" / "tile_31_outline.png").is_file()

    network = copy / "bundle" / "network.onnx"
    data = network.read_bytes()
    network.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(BundleError, match="network.onnx is not the model"):
        load_localizer(copy)
    with pytest.raises(DefectTFError, match="exports to --format onnx only"):
        export_localizer(copy, "litert")


@pytest.mark.integration
def test_exporting_a_classifier_exports_the_localiser_beside_it_too(localizer_output, trained_output, tiles,
                                                                     tmp_path, capsys):
    import shutil
    import subprocess
    import sys

    from programs import HEAVY

    from defect_tf.apps import export

    pair = tmp_path / "pair"
    shutil.copytree(trained_output[0], pair)
    shutil.copytree(localizer_output, pair / "localizer")
    assert export.main(["--model", str(pair), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert (pair / "bundle" / "model.onnx").is_file() and (pair / "localizer" / "bundle" / "network.onnx").is_file()
    assert "exporting the patchcore localiser" in printed and "0 decision(s) changed" in printed
    # the service over both exports answers a damaged photo with its outline, importing no TensorFlow
    photo = tiles / "images" / "tile_31.png"
    code = ("import json, sys\nfrom fastapi.testclient import TestClient\n"
            "from defect_tf.anomaly.store import load_localizer\nfrom defect_tf.apps.service import create_app\n"
            "from defect_tf.runtime.select import open_inferencer\n"
            f"inferencer, localizer = open_inferencer({str(pair)!r}), load_localizer({str(pair)!r})\n"
            "inferencer.metadata.thresholds = [0.0] * len(inferencer.metadata.attributes)  # stage 1: damaged\n"
            "with TestClient(create_app(inferencer, localizer=localizer)) as client:\n"
            f"    answer = client.post('/predict', files=[('image', ('t.png', open({str(photo)!r}, 'rb').read()))])\n"
            f"print(json.dumps([answer.json(), sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    document, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert heavy == [] and document["runtime"] == "ONNX Runtime", result.stderr[-2000:]
    assert document["predictions"][0]["localization"]["defect_pixels"] > 0


@pytest.mark.integration
def test_labelled_defects_without_masks_set_the_image_threshold_and_intact_pixels_the_outline(tiles, tmp_path,
                                                                                            capsys):
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.anomaly.training import LocalizerConfig, train_localizer

    config = LocalizerConfig(data=str(tiles / "images"), labels=str(tiles / "labels.txt"), image_size=64,
                             coreset_size=200, output=str(tmp_path / "out"))
    train_localizer(config)
    assert "thresholds (f1 rule, 5 intact + 3 defective validation photos)" in capsys.readouterr().out
    localizer = load_localizer(tmp_path / "out")
    assert localizer.metadata.calibration == F1_RULE
    intact_val = [name for name in localizer.metadata.split["val"] if int(name[5:7]) < 30]  # tile_00-29: intact
    pixels = np.concatenate([localizer.model.anomaly_map(np.asarray(Image.open(tiles / "images" / name))).ravel()
                             for name in intact_val])
    assert localizer.metadata.pixel_threshold == pytest.approx(np.quantile(pixels, PIXEL_QUANTILE), rel=1e-5)


@pytest.mark.integration
def test_labelled_masks_teach_patchcore_a_defect_head_that_outlines_but_does_not_score(tiles, tmp_path, capsys):
    from defect_tf.anomaly.images import read_photo
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.anomaly.training import LocalizerConfig, train_localizer
    from defect_tf.export.localizer import export_localizer

    split = tmp_path / "split.txt"  # five labelled defects with masks among the validation photos, one to test
    split.write_text("image split\n" + "".join(
        f"tile_{i:02d}.png {'train' if i < 24 else 'val' if 30 <= i < 35 else 'test'}\n" for i in range(36)))
    config = LocalizerConfig(data=str(tiles / "images"), labels=str(tiles / "labels.txt"), split_file=str(split),
                             masks=str(tiles / "masks"), image_size=64, coreset_size=200, output=str(tmp_path / "out"))
    train_localizer(config)
    assert ("defect head: learnt from 5 labelled defect mask(s) and 5 intact photo(s); the thresholds come from "
            "5-fold held-out answers") in capsys.readouterr().out
    localizer = load_localizer(tmp_path / "out")
    assert localizer.metadata.settings["head"] == {"weight": 0.5, "context": 7, "floor": 0.0}
    assert "defect_head.npz" in localizer.metadata.checksums and localizer.metadata.format.endswith("/3")
    assert localizer.describe().startswith("patchcore localiser with a defect head, Keras")
    photo = read_photo(tiles / "images" / "tile_35.png")
    anomaly_map, score = localizer.model.answer(photo)
    head, localizer.model.head = localizer.model.head, None  # the memory bank's map alone
    bank_map, bank_score = localizer.model.answer(photo)
    localizer.model.head = head
    assert score == bank_score and not np.allclose(anomaly_map, bank_map)  # scored on the bank, outlined with both

    export_localizer(tmp_path / "out", log=lambda line: None)  # the exported runtime runs the head too
    exported = load_localizer(tmp_path / "out", "onnx").model.answer(photo)
    np.testing.assert_allclose(exported[0], anomaly_map, rtol=0, atol=1e-4 * np.ptp(anomaly_map))
    assert exported[1] == pytest.approx(score, rel=1e-4)

    head_file = tmp_path / "out" / "bundle" / "defect_head.npz"
    head_file.write_bytes(head_file.read_bytes()[:-1] + b"x")
    with pytest.raises(BundleError, match="defect_head.npz is not the model"):
        load_localizer(tmp_path / "out")

    whole = LocalizerConfig(**{**vars(config), "output": str(tmp_path / "whole"), "whole_defect_head": True})
    train_localizer(whole)  # the head that may lower the map too: a bundle as those written before the floor
    assert load_localizer(tmp_path / "whole").metadata.settings["head"] == {"weight": 0.5, "context": 7}
    assert load_localizer(tmp_path / "whole").describe().startswith("patchcore localiser with a whole defect head")

    train_localizer(LocalizerConfig(**{**vars(config), "output": str(tmp_path / "plain"), "defect_head": False}))
    plain = load_localizer(tmp_path / "plain")
    assert "head" not in plain.metadata.settings and not (tmp_path / "plain" / "bundle" / "defect_head.npz").exists()
    assert plain.describe().startswith("patchcore localiser, Keras")


@pytest.mark.integration
def test_a_mask_of_another_size_is_refused_with_its_file_name(tiles, tmp_path):
    import shutil

    from defect_tf.anomaly.training import LocalizerConfig, train_localizer

    masks = tmp_path / "masks"
    shutil.copytree(tiles / "masks", masks)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "tile_33.png")
    config = LocalizerConfig(data=str(tiles / "images"), labels=str(tiles / "labels.txt"), masks=str(masks),
                             output=str(tmp_path / "out"))
    with pytest.raises(DefectTFError, match=r"tile_33.png: 10x10 px, but tile_33.png is 64x48 px"):
        train_localizer(config)


@pytest.mark.integration
def test_the_web_page_outlines_a_photo_the_classifier_calls_damaged_and_only_then(localizer_output, trained_output,
                                                                                  tiles, monkeypatch):
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.apps.web_page import DefectApp
    from defect_tf.bundle.store import load_bundle
    from defect_tf.inference.predictor import Predictor
    from defect_tf.runtime.predictions import Prediction

    predictor = Predictor(load_bundle(trained_output[0]))
    attributes = predictor.bundle.attributes
    app = DefectApp(predictor, localizer=load_localizer(localizer_output))
    photo = str(tiles / "images" / "tile_31.png")
    for detected in ([attributes[0]], []):
        monkeypatch.setattr(predictor, "predict_photo", lambda pixels, name, found=detected: Prediction(
            name, {a: 0.9 if a in found else 0.1 for a in attributes}, found))
        _, _, gallery, message = app.analyse(photo)
        outlined = [caption for _, caption in gallery if caption.startswith("outline: ")]
        assert bool(outlined) == bool(detected) and ("Outlined by the localiser" in message) == bool(detected)


@pytest.mark.integration
def test_evaluate_scores_a_localiser_on_its_test_split_with_its_masks_and_types(localizer_output, tmp_path, capsys):
    from defect_tf.apps import evaluate

    code = evaluate.main(["--model", str(localizer_output), "--output", str(tmp_path / "scored"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and (report["photos"], report["defective"]) == (12, 6)
    assert report == json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert report["pixel_auroc"] > 0.95 and set(report["per_type"]) == {"hole"}
    assert (tmp_path / "scored" / "outlines.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "scored" / "scores.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit):  # a classifier's flags are not a localiser's, and the reverse
        evaluate.main(["--model", str(localizer_output), "--masks"])


def two_stage_models(localizer_output, trained_output, tiny_demo) -> tuple:
    """The tiny classifier (Keras) and localiser, 12 demo photos, and each photo's highest probability."""
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.runtime.select import open_inferencer

    inferencer, localizer = open_inferencer(trained_output[0], "keras"), load_localizer(localizer_output)
    paths = sorted((tiny_demo[0] / "images").iterdir())[:12]
    found, _ = inferencer.predict([str(path) for path in paths])
    return inferencer, localizer, paths, [max(prediction.probabilities.values()) for prediction in found]


def set_one_threshold(inferencer, cut: float) -> None:
    """The classifier's threshold for every attribute set to `cut`."""
    from dataclasses import replace

    inferencer.metadata = replace(inferencer.metadata, thresholds=[cut] * len(inferencer.metadata.attributes))


@pytest.mark.integration
def test_the_service_outlines_only_what_stage_one_calls_damaged_as_inference_does(localizer_output, trained_output,
                                                                                   tiny_demo):
    from fastapi.testclient import TestClient

    from defect_tf.anomaly.pipeline import TwoStage
    from defect_tf.apps.service import create_app

    inferencer, localizer, paths, highest = two_stage_models(localizer_output, trained_output, tiny_demo)
    # one threshold for every attribute at the median of the photos' highest probabilities: stage 1 calls about
    # half of them damaged (the tiny classifier's own thresholds call all of these damaged)
    set_one_threshold(inferencer, float(np.median(highest)) + 1e-6)
    expected, _ = TwoStage(inferencer, localizer).answer([str(path) for path in paths])  # inference.py --localize
    calls, locate = [], localizer.locate
    localizer.locate = lambda photo, outline=None: calls.append(outline) or locate(photo, outline)
    with TestClient(create_app(inferencer, localizer=localizer)) as client:
        response = client.post("/predict", files=[("image", (path.name, path.read_bytes(), "image/png"))
                                                  for path in paths])
        described = client.get("/model").json()["localizer"]
    assert response.status_code == 200
    records = response.json()["predictions"]
    assert [record["image"] for record in records] == [path.name for path in paths]
    damaged = [answer.localization is not None for answer in expected]
    assert 0 < sum(damaged) < len(paths)  # both kinds among the photos
    assert calls == [True] * sum(damaged)  # stage 2 ran once per photo stage 1 called damaged, told to outline
    for record, answer in zip(records, expected):
        assert record["detected"] == answer.prediction.detected
        if answer.localization is None:
            assert record["localization"] is None
        else:
            theirs = answer.localization.to_json()
            assert record["localization"] == theirs | {"anomaly_score": pytest.approx(theirs["anomaly_score"])}
    assert described == {"model": "patchcore", "runtime": "Keras",
                         "image_threshold": localizer.metadata.image_threshold,
                         "pixel_threshold": localizer.metadata.pixel_threshold}


@pytest.mark.integration
def test_a_photo_called_intact_is_answered_while_another_is_being_outlined(localizer_output, trained_output,
                                                                           tiny_demo):
    import threading

    from fastapi.testclient import TestClient

    from defect_tf.apps.service import create_app

    inferencer, localizer, paths, highest = two_stage_models(localizer_output, trained_output, tiny_demo)
    damaged, intact = paths[int(np.argmax(highest))], paths[int(np.argmin(highest))]
    set_one_threshold(inferencer, (max(highest) + min(highest)) / 2)  # the first called damaged, the second not
    outlining, release, locate = threading.Event(), threading.Event(), localizer.locate

    def held_locate(photo, outline=None):  # stage 2 holds until the test lets it go (60 s at most)
        outlining.set()
        release.wait(60)
        return locate(photo, outline)

    localizer.locate = held_locate
    answers = {}
    with TestClient(create_app(inferencer, localizer=localizer)) as client:
        def post(path):
            answers[path.name] = client.post("/predict", files=[("image", (path.name, path.read_bytes(), "image/png"))])

        first = threading.Thread(target=post, args=(damaged,))
        first.start()
        assert outlining.wait(60)
        second = threading.Thread(target=post, args=(intact,))
        second.start()
        second.join(30)
        answered_while_outlining = not second.is_alive()  # stage 1 did not wait behind stage 2
        release.set()
        first.join(60)
        second.join(60)
    assert answered_while_outlining
    assert answers[intact.name].json()["predictions"][0]["localization"] is None
    assert answers[damaged.name].json()["predictions"][0]["localization"] is not None


@pytest.mark.integration
def test_a_localiser_alone_is_served_with_localize_and_answers_as_inference_does(localizer_output, tiles):
    from fastapi.testclient import TestClient

    from browser import free_port

    from defect_tf.anomaly.pipeline import TwoStage
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.apps import serve
    from defect_tf.apps.service import create_app

    with pytest.raises(BundleError, match="holds an anomaly localiser and no classifier: serve it with --localize"):
        serve.main(["--model", str(localizer_output), "--port", str(free_port())])
    localizer = load_localizer(localizer_output)
    paths = [tiles / "images" / name for name in ("tile_00.png", "tile_31.png", "tile_33.png")]  # intact, 2 holes
    expected, _ = TwoStage(None, localizer).answer([str(path) for path in paths])  # inference.py --localize
    with TestClient(create_app(None, localizer=localizer)) as client:
        response = client.post("/predict", files=[("image", (path.name, path.read_bytes(), "image/png"))
                                                  for path in paths] + [("image", ("notes.txt", b"hello"))])
        assert client.get("/health").json() == {"status": "ok", "runtime": "Keras"}
        assert client.get("/model").json() == {"task": "anomaly", "runtime": "Keras", "localizer": {
            "model": "patchcore", "runtime": "Keras", "image_threshold": localizer.metadata.image_threshold,
            "pixel_threshold": localizer.metadata.pixel_threshold}}
    document = response.json()
    assert response.status_code == 200 and len(document["errors"]) == 1 and "not an image" in document["errors"][0]
    assert [record["image"] for record in document["predictions"]] == [path.name for path in paths]
    for record, answer in zip(document["predictions"], expected):
        theirs = answer.localization.to_json()
        assert record["localization"] == theirs | {"anomaly_score": pytest.approx(theirs["anomaly_score"])}
    assert [record["localization"]["defective"] for record in document["predictions"]] == [False, True, True]


def test_serving_two_stages_without_a_localiser_says_where_it_looked(untrained_output):
    from browser import free_port

    from defect_tf.apps import serve

    with pytest.raises(BundleError, match=f"no anomaly localiser in {untrained_output}: train one with"):
        serve.main(["--model", str(untrained_output), "--localize", "--port", str(free_port())])


def test_the_damage_score_ranks_by_what_stage_one_believes():
    from defect_tf.anomaly.pipeline import damage_score
    from defect_tf.runtime.predictions import Prediction

    assert damage_score(Prediction("a", {"scratch": 0.2, "dent": 0.7}, ["dent"]), "multilabel") == 0.7
    classes = {"good": 0.6, "scratch": 0.3, "dent": 0.1}
    assert damage_score(Prediction("a", classes, ["good"]), "multiclass") == pytest.approx(0.4)


@pytest.mark.integration
def test_evaluate_two_stage_scores_the_localiser_alone_and_behind_the_classifier(localizer_output, trained_output,
                                                                                 tmp_path, capsys):
    import shutil

    from defect_tf.anomaly.store import load_localizer
    from defect_tf.apps import evaluate
    from defect_tf.runtime.select import open_inferencer

    outputs = tmp_path / "outputs"
    shutil.copytree(trained_output[0], outputs)
    with pytest.raises(DefectTFError, match="--two-stage needs a localiser beside the classifier"):
        evaluate.main(["--model", str(outputs), "--two-stage"])
    shutil.copytree(localizer_output, outputs / "localizer")
    capsys.readouterr()
    assert evaluate.main(["--model", str(outputs), "--two-stage", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((outputs / "two_stage.json").read_text()) | {"classifier": report["classifier"]}
    assert report["left_out"] == 0 and report["localizer"]["photos"] == report["two_stage"]["photos"] == 12
    # stage 1 decides: the pipeline's recall is the share of the 6 defective test photos the classifier calls damaged
    localizer = load_localizer(outputs)
    tested = sorted(localizer.metadata.split["test"])
    predictions, _ = open_inferencer(outputs, "keras").predict([str(Path(localizer.metadata.data_dir) / image)
                                                                for image in tested])
    called = {Path(p.image).name for p in predictions if p.detected}
    defective = {image for image in tested if int(image[5:7]) >= 30}
    assert report["two_stage"]["recall"] == pytest.approx(len(called & defective) / 6)
    assert report["localizer"]["pixel_auroc"] > 0.95


def test_an_anomaly_model_refuses_a_cluster_of_machines_before_any_work(tmp_path, monkeypatch):
    from defect_tf.anomaly.training import LocalizerConfig, train_localizer

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    config = LocalizerConfig(data=str(tmp_path / "photos"), output=str(tmp_path / "out"))
    with pytest.raises(DefectTFError, match="TF_CONFIG names 2 machines, but anomaly models train on one machine "
                                            r"\(only classifiers train across machines\): unset TF_CONFIG"):
        train_localizer(config)
    assert not (tmp_path / "out").exists()


def test_a_whole_defect_head_without_a_head_is_refused_before_anything_runs(tmp_path, capsys):
    from defect_tf.apps import train_anomaly

    with pytest.raises(SystemExit) as stop:
        train_anomaly.main(["--task", "anomaly", "--data", str(tmp_path), "--no-defect-head", "--whole-defect-head"])
    assert stop.value.code == 2 and "--whole-defect-head needs the defect head" in capsys.readouterr().err
