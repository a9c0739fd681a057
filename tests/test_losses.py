import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_tf.data.labels import NA
from defect_tf.train.losses import MaskedFocalLoss, attribute_class_weights

LN2 = math.log(2)


def loss_value(loss, labels, logits):
    return float(loss(np.array(labels, np.float32), np.array(logits, np.float32)))


def test_focal_loss_matches_hand_computation_and_ignores_na():
    # p = sigmoid(0) = 0.5 for both known entries: (1 - 0.5)^2 * ln 2 each; the NA entry adds nothing.
    assert loss_value(MaskedFocalLoss(gamma=2.0), [[1, 0, NA]], [[0, 0, 5]]) == pytest.approx(0.25 * LN2, rel=1e-6)
    # p = sigmoid(ln 3) = 0.75 for a positive: (0.25)^2 * -ln 0.75
    assert loss_value(MaskedFocalLoss(gamma=2.0), [[1]], [[math.log(3)]]) == pytest.approx(
        0.0625 * -math.log(0.75), rel=1e-6)


def test_gamma_zero_is_masked_binary_cross_entropy():
    labels, logits = [[1, 0, NA], [0, NA, 1]], [[0.3, -1.2, 9.0], [2.0, -4.0, -0.5]]
    known = np.array(labels) >= 0
    bce = keras.losses.binary_crossentropy(np.array(labels, np.float32)[known][:, None],
                                           np.array(logits, np.float32)[known][:, None], from_logits=True)
    assert loss_value(MaskedFocalLoss(gamma=0.0), labels, logits) == pytest.approx(float(np.mean(bce)), rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_gradients_stay_finite_where_the_sigmoid_saturates(gamma):
    # sigmoid(+-20) is exactly 1 / 0 in float32; a confident, correct prediction gets almost no gradient, not NaN
    # (masked BCE with Adam at lr 1e-3 diverged on NEU's multi-label file this way).
    logits = tf.Variable([[20.0, -20.0, 3.0, -30.0]])
    labels = tf.constant([[1.0, 0.0, 1.0, 1.0]])
    with tf.GradientTape() as tape:
        value = MaskedFocalLoss(gamma=gamma)(labels, logits)
    gradient = tape.gradient(value, logits).numpy()[0]
    assert np.isfinite(value.numpy()) and np.all(np.isfinite(gradient))
    assert abs(gradient[0]) < 1e-8 and abs(gradient[1]) < 1e-8
    # d/dz of -log sigmoid(z) at z = 3 is -sigmoid(-3) (gamma 0), averaged over the 4 entries
    if gamma == 0.0:
        assert gradient[2] == pytest.approx(-1 / (1 + math.exp(3)) / 4, rel=1e-5)
    assert gradient[3] == pytest.approx(-0.25, rel=1e-5)  # confidently wrong: the full gradient, -1 / 4 entries


def test_mean_is_over_known_entries_so_na_rows_do_not_shrink_the_loss():
    loss = MaskedFocalLoss(gamma=2.0)
    alone = loss_value(loss, [[1, 0]], [[0.0, 0.0]])
    with_na_rows = loss_value(loss, [[1, 0], [NA, NA], [NA, NA], [NA, NA]], [[0.0, 0.0], [3.0, -2.0], [1, 1], [0, 0]])
    assert with_na_rows == pytest.approx(alone, rel=1e-6)
    assert loss_value(loss, [[NA, NA]], [[1.0, 2.0]]) == 0.0


def test_na_entries_get_exactly_zero_gradient():
    logits = tf.Variable([[0.4, -0.3, 2.0], [1.5, 0.2, -1.0]])
    labels = tf.constant([[1.0, NA, 0.0], [NA, NA, 1.0]])
    with tf.GradientTape() as tape:
        value = MaskedFocalLoss(gamma=2.0)(labels, logits)
    gradient = tape.gradient(value, logits).numpy()
    assert gradient[0, 1] == 0.0 and gradient[1, 0] == 0.0 and gradient[1, 1] == 0.0
    assert np.all(gradient[[0, 0, 1], [0, 2, 2]] != 0.0)


def test_class_weights_scale_positive_and_negative_terms():
    loss = MaskedFocalLoss(gamma=2.0, positive_weights=[2.0, 1.0], negative_weights=[1.0, 3.0])
    # entry (y=1, attr 0) weighted 2, entry (y=0, attr 1) weighted 3; each unweighted term is 0.25 ln 2
    assert loss_value(loss, [[1, 0]], [[0.0, 0.0]]) == pytest.approx((2 + 3) * 0.25 * LN2 / 2, rel=1e-6)


def test_float16_logits_give_a_float32_loss():
    value = MaskedFocalLoss(gamma=2.0)(tf.constant([[1.0, NA]]), tf.constant([[0.0, 60000.0]], dtype=tf.float16))
    assert value.dtype == tf.float32 and np.isfinite(value.numpy())


def test_config_round_trip():
    loss = MaskedFocalLoss(gamma=1.5, positive_weights=[2.0], negative_weights=[0.5])
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, MaskedFocalLoss)
    assert (again.gamma, again.positive_weights, again.negative_weights) == (1.5, [2.0], [0.5])


def test_balanced_class_weights_from_known_labels_only():
    values = np.array([[1, 0], [0, 0], [0, NA], [0, 1]], np.float32)
    positive, negative = attribute_class_weights(values)
    np.testing.assert_allclose(positive, [4 / 2, 3 / 2], rtol=1e-6)
    np.testing.assert_allclose(negative, [4 / 6, 3 / 4], rtol=1e-6)


def test_class_weights_are_bounded():
    values = np.zeros((100, 3), np.float32)
    values[0, 0] = 1  # 1 positive in 100: balanced weight 50, clipped to 10
    values[:, 2] = NA  # nothing known: weight 1
    positive, negative = attribute_class_weights(values)
    assert positive[0] == pytest.approx(10.0) and negative[0] == pytest.approx(100 / 198, rel=1e-6)
    assert positive[1] == pytest.approx(10.0)  # never positive
    assert positive[2] == 1.0 and negative[2] == 1.0


def test_categorical_loss_is_masked_cross_entropy_with_gamma_zero():
    from defect_tf.train.losses import MaskedCategoricalFocalLoss

    # softmax of (ln 3, 0, 0) is (0.6, 0.2, 0.2): the first image's class 0 costs -ln 0.6; the all-NA row nothing
    labels, logits = [[1, 0, 0], [NA, NA, NA]], [[math.log(3), 0, 0], [5, -5, 0]]
    assert loss_value(MaskedCategoricalFocalLoss(gamma=0.0), labels, logits) == pytest.approx(-math.log(0.6), rel=1e-6)
    # gamma 2 scales it by (1 - 0.6)^2; class weight 3 for class 0 by 3
    assert loss_value(MaskedCategoricalFocalLoss(gamma=2.0), labels, logits) == pytest.approx(
        0.16 * -math.log(0.6), rel=1e-5)
    assert loss_value(MaskedCategoricalFocalLoss(0.0, class_weights=[3, 1, 1]), labels, logits) == pytest.approx(
        3 * -math.log(0.6), rel=1e-6)


def test_label_smoothing_spreads_the_target_over_every_class():
    from defect_tf.train.losses import MaskedCategoricalFocalLoss

    # smoothing 0.3 over 3 classes: target (0.8, 0.1, 0.1) against probabilities (0.6, 0.2, 0.2)
    expected = -(0.8 * math.log(0.6) + 0.2 * math.log(0.2))
    loss = MaskedCategoricalFocalLoss(0.0, label_smoothing=0.3)
    assert loss_value(loss, [[1, 0, 0]], [[math.log(3), 0, 0]]) == pytest.approx(expected, rel=1e-5)
    assert keras.losses.deserialize(keras.losses.serialize(loss)).get_config() == loss.get_config()


def test_balanced_class_weights_follow_the_class_counts():
    from defect_tf.train.losses import class_weights_of

    # 6 images over 3 classes (3, 2, 1): 6 / (3 * count) = 2/3, 1, 2
    values = np.eye(3, dtype=np.float32)[[0, 0, 0, 1, 1, 2]]
    np.testing.assert_allclose(class_weights_of(values), [2 / 3, 1, 2], rtol=1e-6)


def test_focal_alpha_weighs_positives_against_negatives():
    # gamma 0, logits 0: every known entry costs ln 2; alpha 0.75 weighs the positive 0.75, the negative 0.25
    loss = MaskedFocalLoss(gamma=0.0, alpha=0.75)
    assert loss_value(loss, [[1, 0, NA]], [[0, 0, 5]]) == pytest.approx((0.75 + 0.25) * LN2 / 2, rel=1e-6)
    assert loss_value(loss, [[1]], [[0]]) == pytest.approx(0.75 * LN2, rel=1e-6)
    assert keras.losses.deserialize(keras.losses.serialize(loss)).get_config() == loss.get_config()


def test_a_soft_target_weighs_the_positive_and_negative_terms():
    # MixUp's targets: t = 0.3 against p = sigmoid(ln 3) = 0.75 costs -(0.3 ln 0.75 + 0.7 ln 0.25) with gamma 0
    expected = -(0.3 * math.log(0.75) + 0.7 * math.log(0.25))
    assert loss_value(MaskedFocalLoss(0.0), [[0.3, NA]], [[math.log(3), 4]]) == pytest.approx(expected, rel=1e-6)
    # gamma 2: the positive term scaled by (1 - 0.75)^2, the negative one by 0.75^2
    expected = -(0.3 * 0.0625 * math.log(0.75) + 0.7 * 0.5625 * math.log(0.25))
    assert loss_value(MaskedFocalLoss(2.0), [[0.3]], [[math.log(3)]]) == pytest.approx(expected, rel=1e-6)


def test_a_blend_of_two_classes_is_a_soft_softmax_target():
    from defect_tf.train.losses import MaskedCategoricalFocalLoss

    # target (0.25, 0.75, 0) against probabilities (0.6, 0.2, 0.2); gamma 2 scales by (1 - (0.25 * 0.6 + 0.75 * 0.2))^2
    cross_entropy = -(0.25 * math.log(0.6) + 0.75 * math.log(0.2))
    labels, logits = [[0.25, 0.75, 0], [NA, NA, NA]], [[math.log(3), 0, 0], [1, 2, 3]]
    assert loss_value(MaskedCategoricalFocalLoss(0.0), labels, logits) == pytest.approx(cross_entropy, rel=1e-6)
    assert loss_value(MaskedCategoricalFocalLoss(2.0), labels, logits) == pytest.approx(0.7 ** 2 * cross_entropy,
                                                                                        rel=1e-5)
