import numpy as np

from defect_tf.data.augmentation import MixUp
from defect_tf.data.labels import NA
from defect_tf.data.pipeline import make_dataset
from defect_tf.data.sampling import NO_POSITIVE, balance_groups, describe_groups


def test_each_image_joins_the_group_of_its_rarest_positive_attribute():
    # attribute counts: a 3, b 1, c 2 (NA is not a positive)
    values = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0], [NA, NA, 0]])
    np.testing.assert_array_equal(balance_groups(values), [0, 1, 2, 2, NO_POSITIVE, NO_POSITIVE])
    assert describe_groups(balance_groups(values), ["a", "b", "c"]).startswith(
        "--sampler balanced: batches draw each of 4 groups equally often ((none) 2, a 1, b 1, c 2)")


def test_the_balanced_sampler_draws_a_rare_class_as_often_as_a_common_one(tiny_demo):
    root, table = tiny_demo
    paths = [str(root / "images" / name) for name in table.images[:20]]
    values = np.eye(2, dtype=np.float32)[[0] * 18 + [1] * 2]  # 18 of class 0, 2 of class 1
    batches = make_dataset(paths, values, 32, 10, training=True, groups=balance_groups(values), seed=3)
    drawn = np.concatenate([labels.numpy() for _, labels in batches.take(40)])
    assert len(drawn) == 400 and 0.4 < drawn[:, 1].mean() < 0.6  # a 10% class drawn about half the time
    shuffled = make_dataset(paths, values, 32, 10, training=True, seed=3)
    assert np.concatenate([labels.numpy() for _, labels in shuffled.take(40)])[:, 1].mean() == 0.1


def test_mixup_blends_each_image_and_its_labels_with_its_partner_and_keeps_na_where_either_is_na():
    images = np.stack([np.zeros((4, 4, 3)), np.full((4, 4, 3), 100.0)]).astype(np.float32)
    labels = np.array([[1, NA, 0], [0, 1, 1]], np.float32)
    mixed_images, mixed_labels = (t.numpy() for t in MixUp(0.4, seed=1)(images, labels))
    # each image's own share: image 0 (all 0) keeps w0 of itself, image 1 (all 100) w1; each one's partner is the other
    weight = np.array([1.0 - mixed_images[0, 0, 0, 0] / 100.0, mixed_images[1, 0, 0, 0] / 100.0])
    np.testing.assert_allclose(mixed_images, [np.full((4, 4, 3), 100.0 * (1 - weight[0])),
                                              np.full((4, 4, 3), 100.0 * weight[1])], rtol=1e-5)
    np.testing.assert_allclose(mixed_labels, [[weight[0], NA, 1 - weight[0]], [1 - weight[1], NA, weight[1]]],
                               atol=1e-6)
    assert 0 < weight[0] < 1 and weight[0] != weight[1]
