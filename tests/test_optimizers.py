"""Each phase's optimiser: Adam at a constant rate by default, or AdamW, or a cosine schedule after a warm-up."""

import keras
import pytest

from defect_tf.train.optimizers import learning_rate, make_optimizer


def test_the_cosine_schedule_warms_up_over_a_tenth_then_halves_at_mid_decay_and_ends_at_zero():
    schedule = learning_rate(1e-3, "cosine", 100)
    rate = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    assert rate(0) == 0.0
    assert rate(5) == pytest.approx(0.5e-3)  # halfway up the linear warm-up
    assert rate(10) == pytest.approx(1e-3)  # the peak
    assert rate(55) == pytest.approx(0.5e-3, rel=1e-5)  # halfway through the 90 cosine steps: (1 + cos(pi/2)) / 2
    assert rate(100) == pytest.approx(0.0, abs=1e-12)


def test_adam_is_constant_and_adamw_decays_its_weights():
    adam = make_optimizer("adam", 1e-3, "constant", 100, 0.004)
    assert isinstance(adam, keras.optimizers.Adam) and float(adam.learning_rate) == pytest.approx(1e-3)
    adamw = make_optimizer("adamw", 1e-3, "cosine", 100, 0.05)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.05
    with pytest.raises(ValueError, match="optimizer must be one of adam, adamw, not 'sgd'"):
        make_optimizer("sgd", 1e-3, "constant", 100, 0.0)
