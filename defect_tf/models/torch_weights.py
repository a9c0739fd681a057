"""Reading PyTorch weight files without PyTorch, and without running any code from the file.

PyTorch's legacy (pre-zip) format is five pickles — magic number, protocol version, system info, the
state dict (tensors refer to storages by persistent id), the storage keys — then each storage's
raw little-endian data. A pickle can name any Python callable to run while it loads; the unpickler
here accepts only the few names a state dict needs (tensor rebuilds, storage types, OrderedDict) and
refuses the file on any other, so a hostile file cannot run code. Tensors come back as NumPy arrays.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.errors import WeightsError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


@dataclass
class _StorageType:
    name: str


@dataclass
class _TensorView:
    """A tensor as the pickle describes it: where its numbers lie in which storage."""

    key: str
    dtype: type
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, shape, stride, *_ignored) -> _TensorView:
    key, dtype = storage
    return _TensorView(key, dtype, int(offset), tuple(shape), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that builds nothing but dicts of tensor descriptions."""

    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
               ("torch._utils", "_rebuild_tensor"): _rebuild_tensor}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsError(f"refused: the weights file asks to run {module}.{name} while it loads; a weights file "
                           "must hold numbers only")

    def persistent_load(self, saved_id):
        kind, storage_type, key, *_location_and_size = saved_id
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise WeightsError(f"refused: unexpected persistent object {kind!r} in the weights file")
        return str(key), STORAGE_DTYPES[storage_type.name]


def _tensors(state, prefix: str = ""):
    for name, value in state.items():
        if isinstance(value, dict):
            yield from _tensors(value, f"{prefix}{name}.")
        elif isinstance(value, _TensorView):
            yield f"{prefix}{name}", value


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch legacy-format state dict file as NumPy arrays, by name; no code from it runs."""
    data = Path(path).read_bytes()
    stream = io.BytesIO(data)

    def load():
        return _StateDictUnpickler(stream).load()

    try:
        if load() != LEGACY_MAGIC_NUMBER:
            raise WeightsError(f"{path}: not a PyTorch legacy weights file (wrong magic number)")
        if load() != LEGACY_PROTOCOL_VERSION:
            raise WeightsError(f"{path}: unsupported PyTorch file protocol")
        load()  # system info: byte order and type sizes
        state = load()
        keys = load()
        storages = {}
        for key in keys:
            dtype = next(view.dtype for _, view in _tensors(state) if view.key == key)
            (count,) = struct.unpack("<q", stream.read(8))
            size = count * np.dtype(dtype).itemsize
            storages[key] = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count,
                                          offset=stream.tell())
            stream.seek(size, io.SEEK_CUR)
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, StopIteration) as error:
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds no state dict")
    tensors = {}
    for name, view in _tensors(state):
        storage = storages[view.key]
        itemsize = storage.itemsize
        tensors[name] = np.lib.stride_tricks.as_strided(
            storage[view.offset:], shape=view.shape, strides=[s * itemsize for s in view.stride]).copy()
    return tensors
