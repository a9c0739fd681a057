"""Training epochs without Keras's `fit`, for MultiWorkerMirroredStrategy, where `fit` fails (keras-team/keras#20585).

The loop does what `fit` does for a compiled model and the same callbacks: each step runs the forward pass on every
replica, the compiled loss (each replica's mean over its part of the batch, which Keras's losses divide by the
number of replicas under a strategy, so the summed gradients are the global mean's), and the compiled optimiser's
update (EMA and loss scaling included).
Each epoch's `loss` is the mean of the step losses weighted by their images, and `val_loss` the same over the
validation batches, as Keras logs them; the callbacks see them through a `CallbackList`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from defect_tf.errors import DefectTFError
from defect_tf.train.strategy import Devices

# What a collective operation (a step, a variable's first value) raises on every worker once one has died or stopped
# answering: tf.distribute's health check aborts them; a restart is the only recovery
PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                 tf.errors.DeadlineExceededError)


class WorkerLost(DefectTFError):
    """A worker of the cluster died or stopped answering, so training stopped on every worker."""


def _distribution_scaling():
    """Keras's own division of a loss by the replicas under a strategy, and its inverse (private to Keras, so
    imported only by a multi-worker run: a Keras without them fails that run at its start, never another)."""
    from keras.src.losses.loss import scale_loss_for_distribution, unscale_loss_for_distribution

    return scale_loss_for_distribution, unscale_loss_for_distribution


def _train_step(model: keras.Model, strategy: tf.distribute.Strategy):
    optimizer = model.optimizer
    scale_loss_for_distribution, unscale_loss_for_distribution = _distribution_scaling()

    def on_replica(images, labels):
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            loss = model.loss(labels, predictions)  # divided by the replicas already
            if model.losses:
                loss += scale_loss_for_distribution(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        count = tf.cast(tf.shape(images)[0], tf.float32)
        return tf.cast(unscale_loss_for_distribution(loss), tf.float32) * count, count

    @tf.function
    def step(batches):
        loss_sum, count = strategy.run(on_replica, args=next(batches))
        return strategy.reduce("SUM", loss_sum, axis=None), strategy.reduce("SUM", count, axis=None)

    return step


def _validation_step(model: keras.Model, strategy: tf.distribute.Strategy):
    _, unscale_loss_for_distribution = _distribution_scaling()

    def on_replica(images, labels):
        count = tf.cast(tf.shape(images)[0], tf.float32)
        loss = tf.cast(unscale_loss_for_distribution(model.loss(labels, model(images, training=False))), tf.float32)
        return tf.where(count > 0, loss * count, 0.0), count  # a replica may get no image of the last batch

    @tf.function
    def step(images, labels):
        loss_sum, count = strategy.run(on_replica, args=(images, labels))
        return strategy.reduce("SUM", loss_sum, axis=None), strategy.reduce("SUM", count, axis=None)

    return step


def fit_on_workers(model: keras.Model, devices: Devices, train_data, steps: int, initial_epoch: int, epochs: int,
                   val_data, callbacks: list[keras.callbacks.Callback], verbose: int) -> None:
    """Train the compiled `model` from `initial_epoch` to `epochs` (`steps` batches each) on `devices`, calling
    `callbacks` as `fit` would; stops early when a callback sets `model.stop_training`.

    `train_data` and `val_data` (None: no validation) are distributed datasets (`Devices.distribute`), made once
    per run: like `fit`'s, each call's new iterator then continues the seeded shuffle's sequence of orders."""
    with devices.scope():
        model.optimizer.build(model.trainable_variables)
    train_step, batches = _train_step(model, devices.strategy), iter(train_data)
    validation_step = _validation_step(model, devices.strategy)

    def validation_loss() -> float:
        loss_sum, count = 0.0, 0.0
        for images, labels in val_data:
            batch_loss, batch_count = validation_step(images, labels)
            loss_sum, count = loss_sum + float(batch_loss), count + float(batch_count)
        return loss_sum / max(count, 1.0)

    callback_list = keras.callbacks.CallbackList(callbacks, add_history=False, add_progbar=verbose != 0,
                                                 model=model, verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training, logs = False, {}
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        loss_sum, count = 0.0, 0.0
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            batch_loss, batch_count = train_step(batches)
            loss_sum, count = loss_sum + float(batch_loss), count + float(batch_count)
            callback_list.on_train_batch_end(step, {"loss": loss_sum / count})
        logs = {"loss": loss_sum / max(count, 1.0)}
        if val_data is not None:
            logs["val_loss"] = validation_loss()
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)


def worker_lost(error: tf.errors.OpError) -> WorkerLost:
    """The one-line error for a collective operation that a dead worker aborted (`PEER_FAILURES`)."""
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    reason = next((line for line in lines if "aborted" in line), lines[-1] if lines else "")[:240]
    return WorkerLost(f"training stopped on every worker: a worker of the cluster died or stopped answering "
                      f"({type(error).__name__}: {reason})")
