import json
import time

import numpy as np

from defect_tf.models.classifier import build_classifier
from defect_tf.train.callbacks import LossCurve, ResumableEarlyStopping


class FakeOptimizer:
    learning_rate = 0.001


class FakeModel:
    optimizer = FakeOptimizer()


def test_loss_curve_records_phases_and_rewrites_history_and_plot_every_epoch(tmp_path):
    curve = LossCurve(tmp_path)
    curve.set_model(FakeModel())
    curve.phase = "warm-up"
    curve.on_epoch_begin(0)
    time.sleep(0.05)
    curve.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.6})
    assert json.loads((tmp_path / "history.json").read_text())[0]["epoch"] == 1
    curve.phase = "fine-tune"
    curve.on_epoch_begin(1)
    curve.on_epoch_end(1, {"loss": 0.3, "val_loss": 0.4})
    history = json.loads((tmp_path / "history.json").read_text())
    assert [(r["epoch"], r["phase"], r["loss"], r["val_loss"]) for r in history] == [
        (1, "warm-up", 0.5, 0.6), (2, "fine-tune", 0.3, 0.4)]
    assert history[0]["learning_rate"] == 0.001
    assert 0.05 <= history[0]["seconds"] < 5 and 0 <= history[1]["seconds"] < history[0]["seconds"]
    assert (tmp_path / "loss_curve.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp*"))


def test_early_stopping_continues_from_a_saved_state():
    model = build_classifier("small_cnn", 2, 16, None)
    weights = [np.full_like(w, 0.5) for w in model.get_weights()]
    stop = ResumableEarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True,
                                  resume_from={"best": 0.2, "wait": 2, "best_epoch": 4}, resume_weights=weights)
    stop.set_model(model)
    stop.on_train_begin()
    assert (stop.best, stop.wait, stop.best_epoch) == (0.2, 2, 4) and stop.best_weights is weights
    assert not stop.patience_used_up()
    stop.on_epoch_end(7, {"val_loss": 0.25})  # no improvement: the third epoch without one ends training
    assert model.stop_training and stop.stopped_epoch == 7
    stop.on_train_end()
    np.testing.assert_array_equal(model.get_weights()[0], weights[0])  # best weights restored
    assert ResumableEarlyStopping(patience=2, resume_from={"best": 0.1, "wait": 2, "best_epoch": 1}).patience_used_up()
