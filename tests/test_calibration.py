import numpy as np
import pytest

from defect_tf.data.labels import NA
from defect_tf.evaluate.thresholds import best_f1_threshold, calibrate_thresholds


def test_threshold_is_between_the_best_cut_and_the_next_lower_score():
    # cut at 0.35: TP 2, FP 1 -> F1 0.8 (best); cut at 0.8: F1 0.67. Next lower score 0.1 -> midpoint 0.225
    assert best_f1_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.225)


def test_separable_scores_put_the_threshold_in_the_gap():
    assert best_f1_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.6, 0.9])) == pytest.approx(0.4)


def test_fallback_without_positives_or_negatives():
    assert best_f1_threshold(np.array([0, 0, 0]), np.array([0.1, 0.7, 0.3])) == 0.5
    assert best_f1_threshold(np.array([1, 1]), np.array([0.1, 0.7]), fallback=0.3) == 0.3
    assert best_f1_threshold(np.array([]), np.array([])) == 0.5


def test_calibration_uses_only_known_labels_per_attribute():
    labels = np.array([[0, NA], [1, 0], [NA, 1], [1, NA]], np.float32)
    scores = np.array([[0.2, 0.99], [0.7, 0.3], [0.01, 0.8], [0.9, 0.05]])
    # attribute 0 known: (0, .2), (1, .7), (1, .9) -> cut .7, midpoint with .2 = .45
    # attribute 1 known: (0, .3), (1, .8) -> cut .8, midpoint with .3 = .55 (the NA scores .99 and .05 are ignored)
    np.testing.assert_allclose(calibrate_thresholds(labels, scores), [0.45, 0.55], rtol=1e-6)
