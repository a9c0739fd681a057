"""The classifier: a named backbone under a named head; where its weights come from, and which layers train."""

from __future__ import annotations

import keras

from defect_tf.errors import WeightsError
from defect_tf.io.file_types import file_type
from defect_tf.io.untrusted import UnreadableFileError
from defect_tf.limits import MAX_MODEL_FILE_BYTES
from defect_tf.models.heads import DEFAULT_ATTENTION, DEFAULT_HEAD, DEFAULT_POOLING, DROPOUT, ClassifierHead
from defect_tf.models.registry import get_backbone

SCRATCH_BATCHNORM_MOMENTUM = 0.9


def resolve_weights(backbone_name: str, weights: str) -> str | None:
    """Turn `--weights` (imagenet, none, or a file path) into a local weights file, or None for random init.

    ImageNet weights come from the backbone's own source (Keras's cache and store, or a pip package);
    when they can't be had (offline, say) the error says exactly what to do instead of showing a stack trace.
    """
    if weights.lower() == "none":
        return None
    backbone = get_backbone(backbone_name)
    if weights.lower() == "imagenet":
        if backbone.imagenet is None:
            raise WeightsError(f"there are no ImageNet weights for {backbone_name}; train it with --weights none")
        return backbone.imagenet(backbone_name)
    try:
        kind = file_type(weights, MAX_MODEL_FILE_BYTES, "weights file")
    except UnreadableFileError as error:
        hint = "; use imagenet, none, or a path to a weights file" if error.reason == "file not found" else ""
        raise WeightsError(f"--weights {error}{hint}") from None
    if kind not in dict(backbone.weights_files):
        wanted = " or ".join(description for _, description in backbone.weights_files)
        raise WeightsError(f"--weights {weights}: {kind}, not a weights file {backbone_name} reads ({wanted})")
    return weights


def build_classifier(backbone_name: str, n_outputs: int, image_size: int, weights_file: str | None,
                     dropout: float = DROPOUT, pooling: str = DEFAULT_POOLING, head: str = DEFAULT_HEAD,
                     attention: str = DEFAULT_ATTENTION) -> keras.Model:
    """Backbone -> ClassifierHead (models/heads.py): logits, float32 even under mixed precision.

    `pooling` "avg" (the usual head) or "max": the strongest response anywhere, which a defect that
    covers a few pixels of a large image is not diluted away by.

    Takes images with values in [0, 255]; the backbone does its own scaling. With pretrained weights
    the backbone always runs in inference mode, so its BatchNormalization statistics are never
    overwritten by small-batch estimates (Keras transfer-learning guide); trained from scratch, it
    must learn them, so it runs in training mode, and its moving averages use a shorter memory
    (momentum 0.9, not 0.99) so that they keep up with weights that change fast over a few hundred steps.
    """
    classifier_head = ClassifierHead(n_outputs, head, attention, pooling, dropout, name="head")
    backbone = get_backbone(backbone_name)
    base = backbone.constructor(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    if weights_file is not None:
        try:
            backbone.load_weights(base, weights_file)
        except WeightsError:
            raise
        except Exception as error:
            raise WeightsError(f"cannot load {backbone_name} weights from {weights_file}: {error}") from None
    else:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BATCHNORM_MOMENTUM
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = base(inputs, training=False) if weights_file is not None else base(inputs)
    return keras.Model(inputs, classifier_head(features), name=f"{backbone_name}_classifier")


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone nested inside a classifier built by `build_classifier`."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def top_layers(model: keras.Model, spec: int | str) -> int:
    """How many backbone layers, from the top, a phase-2 `unfreeze` setting means: a number, or the name of the
    first layer of the top group (a registry entry's stage boundary)."""
    layers = backbone_of(model).layers
    if isinstance(spec, int):
        return spec
    names = [layer.name for layer in layers]
    if spec not in names:
        raise ValueError(f"the backbone has no layer {spec!r} to unfreeze from")
    return len(layers) - names.index(spec)


def set_trainable_top(model: keras.Model, n_layers: int | None, train_batchnorm: bool) -> int:
    """Freeze the backbone except its top `n_layers` (None: all of them); the head always trains.

    BatchNormalization layers stay frozen unless `train_batchnorm` (training from scratch).
    Returns the number of backbone layers left trainable.
    """
    base = backbone_of(model)
    base.trainable = True
    first_trainable = 0 if n_layers is None else max(0, len(base.layers) - n_layers)
    trainable = 0
    for index, layer in enumerate(base.layers):
        is_batchnorm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = index >= first_trainable and (train_batchnorm or not is_batchnorm)
        trainable += layer.trainable
    if trainable == 0:
        base.trainable = False
    return trainable
