"""Each task's decision rule, label checks and report, with values computed by hand."""

import numpy as np
import pytest

from defect_tf.data.labels import NA, LabelTable
from defect_tf.evaluate.metrics import class_indices, confusion_matrix, operating_point, top_k_accuracy
from defect_tf.tasks import TASKS, get_task

MULTICLASS, BINARY, MULTILABEL = get_task("multiclass"), get_task("binary"), get_task("multilabel")


def test_every_task_is_found_by_its_name_and_an_unknown_name_lists_them():
    assert {name: task.name for name, task in TASKS.items()} == {name: name for name in TASKS}
    with pytest.raises(ValueError, match="choose one of: multilabel, multiclass, binary"):
        get_task("regression")


def test_multiclass_probabilities_are_a_softmax_and_the_highest_trained_class_decides():
    probabilities = MULTICLASS.probabilities(np.array([[np.log(3), 0.0, 0.0], [0.0, 0.0, 1000.0]]))
    np.testing.assert_allclose(probabilities, [[0.6, 0.2, 0.2], [0, 0, 1]], atol=1e-12)
    untrained = np.array([False, False, True])
    np.testing.assert_array_equal(MULTICLASS.decide(probabilities, np.full(3, np.nan), untrained),
                                  [[True, False, False], [True, False, False]])  # class 2 never chosen


def test_multilabel_and_binary_decide_by_threshold_and_never_an_untrained_attribute():
    probabilities = np.array([[0.7, 0.4, 0.9]])
    decided = MULTILABEL.decide(probabilities, np.array([0.5, 0.3, 0.5]), np.array([False, False, True]))
    np.testing.assert_array_equal(decided, [[True, True, False]])


def test_multiclass_labels_make_a_known_class_s_other_entries_zero_and_a_row_without_one_unknown():
    values = np.array([[1, NA, 0], [NA, NA, 0], [0, 0, 1]], np.float32)
    np.testing.assert_array_equal(MULTICLASS.prepare(values), [[1, 0, 0], [NA, NA, NA], [0, 0, 1]])


def test_labels_a_task_cannot_train_on_are_named():
    table = LabelTable(["a", "b"], ["x.png", "y.png", "z.png"], np.array([[1, 1], [0, 0], [1, 0]], np.float32))
    problems = MULTICLASS.label_problems(table)
    assert "1 image(s) have more than one class, e.g. x.png" in problems[0]
    assert "1 image(s) are 0 for every class, e.g. y.png" in problems[1]
    assert "exactly one attribute" in BINARY.label_problems(table)[0]
    assert BINARY.label_problems(LabelTable(["a"], ["x.png"], np.array([[1]], np.float32))) == []
    assert MULTILABEL.label_problems(table) == []


def test_confusion_matrix_top_k_and_class_indices():
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [NA, NA, NA]], np.float32)
    truth = class_indices(labels)
    np.testing.assert_array_equal(truth, [0, 1, 1, -1])
    np.testing.assert_array_equal(confusion_matrix(truth, np.array([0, 2, 1, 0]), 3),
                                  [[1, 0, 0], [0, 1, 1], [0, 0, 0]])  # the unknown row is left out
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05]])
    assert top_k_accuracy(truth, scores, 1) == pytest.approx(2 / 3)
    assert top_k_accuracy(truth, scores, 2) == 1.0


def test_binary_operating_point_over_known_labels():
    labels = np.array([1, 1, 0, 0, 0, NA])
    scores = np.array([0.9, 0.3, 0.6, 0.2, 0.1, 0.99])
    # at 0.5: one of two positives found, one of three negatives flagged, precision 1 / 2; each with Wilson's
    # 95% interval (1 of 2: 0.0945-0.9055, 1 of 3: 0.0615-0.7923, by the formula at z = 1.96). F1 1/2: 1 true
    # positive among the 3 images positive or called so (J = 1/3); its interval is Wilson's of 1 of 3 through
    # 2J / (1 + J): 2 * 0.0615 / 1.0615 = 0.1159 to 2 * 0.7923 / 1.7923 = 0.8841
    one_of_two, one_of_three, f1 = (0.0945312, 0.9054688), (0.0614919, 0.7923404), (0.1158595, 0.8841405)
    assert operating_point(labels, scores, 0.5) == {
        "threshold": 0.5, "recall": 0.5, "false_positive_rate": pytest.approx(1 / 3), "precision": 0.5, "f1": 0.5,
        **{f"{name}_{end}": pytest.approx(bounds[i], abs=1e-6)
           for name, bounds in (("recall", one_of_two), ("false_positive_rate", one_of_three),
                                ("precision", one_of_two), ("f1", f1)) for i, end in enumerate(("low", "high"))}}
    text = BINARY.format_report(BINARY.report(labels[:, None], scores[:, None], np.array([0.5]), ["scratch"]))
    assert ("recall (true-positive rate) 0.500 (0.095-0.905), false-positive rate 0.333 (0.061-0.792), "
            "precision 0.500 (0.095-0.905)") in text


def test_multiclass_report_counts_accuracy_per_class_scores_and_prints_the_confusion_matrix():
    labels = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    report = MULTICLASS.report(labels, scores, np.full(3, np.nan), ["crack", "dent", "stain"])
    assert report["accuracy"] == 0.75 and report["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    # crack: precision 1, recall 1/2, F1 2/3; dent: precision 1/2, recall 1, F1 2/3; stain: all 1
    assert report["per_class"]["f1"] == pytest.approx([2 / 3, 2 / 3, 1.0], abs=1e-6)
    assert report["macro"]["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-6)
    text = MULTICLASS.format_report(report)
    # Wilson's interval of 3 right of 4: (0.75 + z^2 / 8 -+ z sqrt(0.75 * 0.25 / 4 + z^2 / 64)) / (1 + z^2 / 4)
    z = 1.959963984540054
    low, high = ((0.75 + z * z / 8 + sign * z * np.sqrt(0.75 * 0.25 / 4 + z * z / 64)) / (1 + z * z / 4)
                 for sign in (-1, 1))
    assert (report["accuracy_low"], report["accuracy_high"]) == (round(low, 6), round(high, 6))
    assert "accuracy over 4 images with a known class: 0.750 (95% interval 0.301-0.954; top-2: 1.000)" in text
    assert text.splitlines()[-5:-2] == ["crack            1     1     0", "dent             0     1     0",
                                        "stain            0     0     1"]
    assert MULTICLASS.headline(report) == "accuracy 0.750, macro F1 0.778"
