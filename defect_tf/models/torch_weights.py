"""Reading PyTorch weight files without PyTorch, trusting nothing in the file: no code from it runs, no number in
it is believed before it is checked.

PyTorch's legacy (pre-zip) format is five pickles — magic number, protocol version, system info, the
state dict (tensors refer to storages by persistent id), the storage keys — then each storage's
raw little-endian data. A pickle can name any Python callable to run while it loads; the unpickler
here accepts only the few names a state dict needs (tensor rebuilds, storage types, OrderedDict) and
refuses the file on any other, so a hostile file cannot run code. The pickles' opcodes are counted before
they are run (`limits.MAX_PICKLE_OPCODES`), the state dict must be a tree of at most `limits.MAX_PICKLE_DEPTH`
levels (a file of shared nested dicts would otherwise hold 2^60 paths), every storage must lie inside the file,
and every tensor's dtype, shape, strides and offset must stay inside its storage before it is viewed.
Tensors come back as NumPy arrays.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import pickletools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defect_tf.errors import WeightsError
from defect_tf.io.file_types import describe_file_type
from defect_tf.io.untrusted import UnreadableFileError, read_bytes
from defect_tf.limits import MAX_MODEL_FILE_BYTES, MAX_PICKLE_DEPTH, MAX_PICKLE_OPCODES, MAX_TENSOR_DIMENSIONS

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _Refused(Exception):
    """Raised inside the unpickler; becomes a WeightsError naming the file."""


@dataclass
class _StorageType:
    name: str


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type


@dataclass
class _TensorView:
    """A tensor as the pickle describes it: where its numbers lie in which storage (checked before use)."""

    storage: object
    offset: object
    shape: object
    stride: object


def _rebuild_tensor(storage=None, offset=None, shape=None, stride=None, *_ignored) -> _TensorView:
    return _TensorView(storage, offset, shape, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that builds nothing but dicts of tensor descriptions."""

    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
               ("torch._utils", "_rebuild_tensor"): _rebuild_tensor}

    def __init__(self, stream, storage_types: dict[str, type]):
        super().__init__(stream)
        self.storage_types = storage_types  # key -> dtype, shared by the whole file

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise _Refused(f"refused: the weights file asks to run {module}.{name} while it loads; a weights file must "
                       "hold numbers only")

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or len(saved_id) < 3 or saved_id[0] != "storage" \
                or not isinstance(saved_id[1], _StorageType) or not isinstance(saved_id[2], str):
            raise _Refused(f"refused: unexpected persistent object {str(saved_id)[:60]!r}")
        key, dtype = saved_id[2], STORAGE_DTYPES[saved_id[1].name]
        if self.storage_types.setdefault(key, dtype) is not dtype:
            raise _Refused(f"refused: storage {key!r} is named with two number types")
        return _StorageRef(key, dtype)


def _count_opcodes(data: bytes, start: int) -> None:
    """Walk one pickle's opcodes without running them; refuse one that would build too many objects."""
    count = 0
    try:
        for _ in pickletools.genops(io.BytesIO(data[start:])):
            count += 1
            if count > MAX_PICKLE_OPCODES:
                raise _Refused(f"refused: a pickle of more than {MAX_PICKLE_OPCODES:,} operations is not a state dict")
    except _Refused:
        raise
    except Exception as error:  # genops raises ValueError (and others) on a malformed stream
        raise pickle.UnpicklingError(str(error)) from None


def _tensors(state: dict, path: str = "", depth: int = 0, seen: set | None = None):
    """(name, view) for every tensor of a state dict: a tree of str-keyed dicts, each container met once."""
    seen = set() if seen is None else seen
    if depth > MAX_PICKLE_DEPTH:
        raise _Refused(f"refused: dicts nested more than {MAX_PICKLE_DEPTH} deep (at {path[:80]!r})")
    if id(state) in seen:
        raise _Refused(f"refused: {path[:80]!r} is a dict met twice (a state dict is a tree)")
    seen.add(id(state))
    for name, value in state.items():
        if not isinstance(name, str):
            raise _Refused(f"refused: a key that is not a name ({type(name).__name__}) in the state dict")
        if isinstance(value, dict):
            yield from _tensors(value, f"{path}{name}.", depth + 1, seen)
        elif isinstance(value, _TensorView):
            yield f"{path}{name}", value


def _checked_view(name: str, view: _TensorView, storages: dict[str, np.ndarray]) -> tuple[np.ndarray, tuple, tuple,
                                                                                             int]:
    """(storage, shape, element strides, offset) once every number is checked against the storage's real size."""
    if not isinstance(view.storage, _StorageRef) or view.storage.key not in storages:
        raise _Refused(f"{name}: its storage is not one the file holds")
    storage = storages[view.storage.key]
    shape, stride, offset = view.shape, view.stride, view.offset

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(shape, (tuple, list)) or not isinstance(stride, (tuple, list)) or len(shape) != len(stride) \
            or len(shape) > MAX_TENSOR_DIMENSIONS or not all(map(whole, shape)) or not all(map(whole, stride)) \
            or not whole(offset):
        raise _Refused(f"{name}: a malformed tensor description (shape {str(shape)[:40]}, strides {str(stride)[:40]}, "
                       f"offset {str(offset)[:20]})")
    if math.prod(shape) == 0:
        return storage, tuple(shape), tuple(stride), 0
    last = offset + sum((size - 1) * step for size, step in zip(shape, stride))
    if last >= storage.size:
        raise _Refused(f"{name}: reaches element {last:,} of a storage of {storage.size:,} (shape {tuple(shape)}, "
                       f"strides {tuple(stride)}, offset {offset}); the file is damaged or forged")
    return storage, tuple(shape), tuple(stride), offset


def _read_storages(data: bytes, stream: io.BytesIO, keys, storage_types: dict[str, type]) -> dict[str, np.ndarray]:
    """Each storage's numbers, as a view of the file's bytes: its element count must fit in what is left."""
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys) or len(set(keys)) != len(keys):
        raise _Refused("the storage list is not a list of distinct names")
    storages = {}
    for key in keys:
        if key not in storage_types:
            raise _Refused(f"storage {key!r} is listed but no tensor names it")
        dtype = np.dtype(storage_types[key]).newbyteorder("<")
        header = stream.read(8)
        if len(header) != 8:
            raise _Refused(f"storage {key!r}: the file ends before its size")
        (count,) = struct.unpack("<q", header)
        left = len(data) - stream.tell()
        if count < 0 or count * dtype.itemsize > left:
            raise _Refused(f"storage {key!r} claims {count:,} numbers ({count * dtype.itemsize:,} bytes) where "
                           f"{left:,} bytes are left; the file is damaged or forged")
        storages[key] = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
        stream.seek(count * dtype.itemsize, io.SEEK_CUR)
    return storages


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch legacy-format state dict file as NumPy arrays, by name; no code from it runs, and a
    file that is not one (another format, damaged, forged) is a one-line WeightsError."""
    try:
        data = read_bytes(path, MAX_MODEL_FILE_BYTES, "weights file")
    except UnreadableFileError as error:
        raise WeightsError(f"--weights {error}") from None
    kind = describe_file_type(data)
    if kind != "a pickle":
        raise WeightsError(f"{path}: {kind}, not a PyTorch weights file (legacy format: five pickles and the tensors' "
                           "bytes)")
    stream = io.BytesIO(data)
    storage_types: dict[str, type] = {}

    def load():
        _count_opcodes(data, stream.tell())
        return _StateDictUnpickler(stream, storage_types).load()

    try:
        if load() != LEGACY_MAGIC_NUMBER:
            raise WeightsError(f"{path}: a pickle, but not a PyTorch legacy weights file (wrong magic number)")
        if load() != LEGACY_PROTOCOL_VERSION:
            raise WeightsError(f"{path}: unsupported PyTorch file protocol")
        load()  # system info: byte order and type sizes
        state = load()
        if not isinstance(state, dict):
            raise WeightsError(f"{path}: holds no state dict")
        views = dict(_tensors(state))
        storages = _read_storages(data, stream, load(), storage_types)
        checked = {name: _checked_view(name, view, storages) for name, view in views.items()}
        total = sum(math.prod(shape) * storage.itemsize for storage, shape, _, _ in checked.values())
        if total > MAX_MODEL_FILE_BYTES:
            raise _Refused(f"its tensors would take {total:,} bytes (over {MAX_MODEL_FILE_BYTES:,}) from "
                           f"{len(data):,} bytes of file")
    except WeightsError:
        raise
    except _Refused as refusal:
        raise WeightsError(f"{path}: {refusal}") from None
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, AttributeError, KeyError,
            IndexError, RecursionError, MemoryError, OverflowError) as error:
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({type(error).__name__}: "
                           f"{str(error)[:100]})") from None
    return {name: np.lib.stride_tricks.as_strided(storage[offset:], shape=shape,
                                                  strides=[step * storage.itemsize for step in stride]).copy()
            for name, (storage, shape, stride, offset) in checked.items()}
