"""Each phase's optimiser: Adam at a constant rate by default, or AdamW, or a cosine schedule after a warm-up."""

import keras
import numpy as np
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


@pytest.mark.integration
def test_ema_is_what_validation_and_early_stopping_see_and_a_resumed_run_continues_the_same_average(tmp_path):
    import keras

    from defect_tf.train.callbacks import EMAWeights

    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)

    def model_and_probe():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(make_optimizer("adam", 0.05, "constant", 8, 0.0, ema=0.9), loss="mse")
        seen = []
        probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
            (*model.get_weights(), logs.get("val_loss"))))
        return model, seen, probe

    model, seen, probe = model_and_probe()
    model.fit(x, y, batch_size=8, epochs=4, shuffle=False, validation_data=(x, y), verbose=0,
              callbacks=[EMAWeights(), probe])
    for kernel, bias, val_loss in seen:  # at each epoch's end the model holds the average, which validation scored
        assert float(np.mean((x @ kernel + bias - y) ** 2)) == pytest.approx(val_loss, rel=1e-4)
    average = model.optimizer._model_variables_moving_average[0].numpy()
    np.testing.assert_allclose(model.get_weights()[0], average, rtol=1e-6)  # the run ends on the average

    straight, _, probe = model_and_probe()  # saves at the end of epoch 2 of 4, as EpochCheckpoint does
    save = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epoch == 1 and straight.save_weights(
        tmp_path / "epoch2.weights.h5"))
    straight.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[EMAWeights(), save])
    resumed, _, probe = model_and_probe()  # killed after that save, then resumed from it
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(tmp_path / "epoch2.weights.h5")
    resumed.fit(x, y, batch_size=8, initial_epoch=2, epochs=4, shuffle=False, verbose=0,
                callbacks=[EMAWeights(average_in_model=True)])
    for after_resume, uninterrupted in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(after_resume, uninterrupted, rtol=1e-5)
    broken, _, probe = model_and_probe()  # without knowing the model holds the average, the roles swap
    broken.optimizer.build(broken.trainable_variables)
    broken.load_weights(tmp_path / "epoch2.weights.h5")
    broken.fit(x, y, batch_size=8, initial_epoch=2, epochs=4, shuffle=False, verbose=0, callbacks=[EMAWeights()])
    assert not np.allclose(broken.get_weights()[0], straight.get_weights()[0], rtol=1e-3)


def test_the_weights_average_spans_about_one_epoch_and_at_most_a_thousand_steps():
    from defect_tf.train.optimizers import ema_momentum

    assert (ema_momentum(6), ema_momentum(40), ema_momentum(5000), ema_momentum(1)) == (1 - 1 / 6, 0.975, 0.999, 0.0)
    assert make_optimizer("adamw", 1e-3, "constant", 10, 0.004, ema=0.975).ema_momentum == 0.975
    assert not make_optimizer("adam", 1e-3, "constant", 10, 0.0).use_ema
