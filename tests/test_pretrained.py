"""Pretrained backbones compute what their publishers' pretrained networks compute, offline, and a weights file
never runs code."""

import io
import os
import pickle

import h5py
import keras
import numpy as np
import pytest

from defect_tf.errors import WeightsError
from defect_tf.models import efficientnet_lite
from defect_tf.models.classifier import backbone_of, build_classifier, resolve_weights
from defect_tf.models.pretrained import KerasDownload, load_keras_efficientnet_weights, load_keras_weights
from defect_tf.models.registry import BACKBONES, get_backbone
from defect_tf.models.torch_weights import LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, read_legacy_state_dict

KERAS_STORE_BACKBONES = sorted(name for name, spec in BACKBONES.items() if isinstance(spec.imagenet, KerasDownload))
SIZE = 32


def is_efficientnet(name: str) -> bool:
    return get_backbone(name).load_weights is load_keras_efficientnet_weights


def write_keras_store_file(name: str, path) -> keras.Model:
    """A file laid out as Keras's store publishes it (legacy HDF5), from a randomly initialised backbone whose
    input normalisation holds ImageNet-like statistics; returns that backbone."""
    from keras.src.legacy.saving import legacy_h5_format

    model = get_backbone(name).constructor(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    if is_efficientnet(name):  # its input normalisation is part of the weights file
        normalization = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
        normalization.adapt_mean.assign([0.485, 0.456, 0.406])
        normalization.adapt_variance.assign([0.229 ** 2, 0.224 ** 2, 0.225 ** 2])
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return model


@pytest.mark.parametrize("name", [name if name == "efficientnet_b0" else pytest.param(name, marks=pytest.mark.integration)
                                  for name in KERAS_STORE_BACKBONES])  # the default in the unit tier, all in CI
def test_a_backbone_from_a_weights_file_computes_what_keras_pretrained_model_computes(name, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    path = tmp_path / get_backbone(name).imagenet.file_name
    write_keras_store_file(name, path)
    downloads = []

    def from_the_store(file_name, origin, **kwargs):  # Keras's download, answered without a network
        downloads.append(file_name)
        return str(path)

    monkeypatch.setattr(keras.utils, "get_file", from_the_store)
    monkeypatch.setattr(file_utils, "get_file", from_the_store)
    constructor = get_backbone(name).constructor
    reference = constructor(include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3))
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    expected = reference(images, training=False).numpy()  # eager: no predict() graph to trace
    scale = np.abs(expected).max()  # a random network's features are tiny: compare relative to their size

    for weights in ("imagenet", str(path)):  # --weights imagenet, and --weights PATH
        model = build_classifier(name, 2, SIZE, resolve_weights(name, weights))
        np.testing.assert_allclose(backbone_of(model)(images, training=False).numpy(), expected, rtol=1e-4,
                                   atol=1e-4 * scale)
    assert downloads == [path.name, path.name]

    if is_efficientnet(name):  # Keras's plain loader would miss EfficientNet's second input scaling
        plain = constructor(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
        load_keras_weights(plain, path)  # what the project did before: the stem saw inputs about twice too large
        assert np.abs(plain(images, training=False).numpy() - expected).max() > 0.1 * scale


def test_offline_the_error_names_the_backbone_that_needs_no_network(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsError) as error:
        resolve_weights("efficientnet_b0", "imagenet")
    message = str(error.value)
    assert "\n" not in message and "Name or service" in message
    assert "--backbone efficientnet_lite0 has ImageNet weights that need no network" in message
    assert "efficientnetb0_notop.h5" in message and "--weights none" in message


def imagenet_lite(tmp_path, variant: str = "efficientnet_lite0"):
    side = efficientnet_lite.VARIANTS[variant].resolution  # each at its native resolution
    return efficientnet_lite.EfficientNetLite(variant, include_top=True, input_shape=(side, side, 3),
                                              weights=efficientnet_lite.imagenet_weights(tmp_path, variant))


def top_classes(model, photo: np.ndarray) -> list[tuple[int, float]]:
    import tensorflow as tf

    side = model.input_shape[1]
    image = tf.image.resize(photo[None].astype("float32"), (side, side), antialias=True).numpy()
    logits = model(image, training=False).numpy()[0].astype("float64")
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    return [(int(index), float(probabilities[index])) for index in np.argsort(probabilities)[::-1][:3]]


@pytest.mark.parametrize("variant", sorted(efficientnet_lite.VARIANTS))
def test_converted_lite_models_see_a_cat_and_a_cup_of_coffee(variant, tmp_path):
    from skimage import data

    model = imagenet_lite(tmp_path, variant)
    # as published (num_batches_tracked counters dropped): Lite0 4.7 M, Lite1 5.5 M, Lite2 6.2 M
    assert model.count_params() == efficientnet_lite.VARIANTS[variant].parameters
    cat, coffee = top_classes(model, data.chelsea()), top_classes(model, data.coffee())
    assert cat[0][0] in range(281, 286) and cat[0][1] > 0.5  # ImageNet's cats: tabby ... Egyptian cat (285)
    assert coffee[0][0] in (967, 968) and coffee[0][1] > 0.5  # espresso, cup


def test_the_conversion_runs_once_and_a_damaged_cache_file_is_converted_again(tmp_path):
    path = efficientnet_lite.imagenet_weights(tmp_path)
    first = os.stat(path).st_mtime_ns
    assert efficientnet_lite.imagenet_weights(tmp_path) == path and os.stat(path).st_mtime_ns == first
    with open(path, "r+b") as file:
        file.seek(1000)
        file.write(b"damaged")
    efficientnet_lite.imagenet_weights(tmp_path)
    with np.load(path, allow_pickle=False) as arrays:
        assert len(arrays.files) == 247 and arrays["stem_conv/kernel"].shape == (3, 3, 3, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == [efficientnet_lite.LITE0.cache_file,
                                                          efficientnet_lite.LITE0.cache_file + ".sha256"]


def test_lite0_loads_from_the_pytorch_file_itself_as_from_the_converted_one(tmp_path):
    source = efficientnet_lite._package_file()
    images = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    outputs = []
    for weights in (str(source), efficientnet_lite.imagenet_weights(tmp_path)):
        model = build_classifier("efficientnet_lite0", 2, 64, resolve_weights("efficientnet_lite0", weights))
        outputs.append(backbone_of(model)(images, training=False).numpy())
    np.testing.assert_array_equal(*outputs)


@pytest.mark.parametrize("variant, other", [("efficientnet_lite1", "efficientnet_lite0"),
                                            ("efficientnet_lite2", "efficientnet_lite1")])
def test_one_lite_models_weights_are_refused_by_another(variant, other):
    source = efficientnet_lite._package_file(efficientnet_lite.VARIANTS[other])
    with pytest.raises(WeightsError, match=f"(no weights for|has shape).*{variant}|has shape"):
        efficientnet_lite.EfficientNetLite(variant, input_shape=(64, 64, 3), weights=str(source))


def test_lite0s_top_block_is_its_last_mbconv_block_and_head():
    model = efficientnet_lite.EfficientNetLite("efficientnet_lite0", input_shape=(64, 64, 3))
    top = [layer.name for layer in model.layers[-efficientnet_lite.TOP_BLOCK_LAYERS:]]
    assert top == ["block15_expand_conv", "block15_expand_bn", "block15_expand_activation", "block15_dwconv",
                   "block15_bn", "block15_activation", "block15_project_conv", "block15_project_bn", "top_conv",
                   "top_bn", "top_activation"]


def test_the_pytorch_reader_gives_the_published_tensors():
    tensors = read_legacy_state_dict(efficientnet_lite._package_file())
    assert len(tensors) == 296
    assert tensors["_conv_stem.weight"].shape == (32, 3, 3, 3) and tensors["_fc.weight"].shape == (1000, 1280)
    assert tensors["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    # every number of the Keras model (BatchNorm's moving statistics included), plus 49 BatchNorm step counters
    assert sum(t.size for name, t in tensors.items() if not name.endswith("num_batches_tracked")) == 4_694_024


class _RunsACommand:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def legacy_file(payload) -> bytes:
    stream = io.BytesIO()
    for part in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, {"little_endian": True}, payload, []):
        pickle.dump(part, stream, protocol=2)
    return stream.getvalue()


def test_a_weights_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(legacy_file({"_conv_stem.weight": _RunsACommand()}))
    with pytest.raises(WeightsError, match="refused: the weights file asks to run posix.system"):
        read_legacy_state_dict(path)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(WeightsError, match="cannot load efficientnet_lite0 weights|refused"):
        build_classifier("efficientnet_lite0", 2, 32, str(path))
    assert not (tmp_path / "pwned").exists()
