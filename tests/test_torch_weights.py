"""The PyTorch weights reader trusts nothing in the file: hostile files, made here as PyTorch would write them
(legacy format, storages by persistent id), end in a one-line WeightsError, never in a crash, a hang, process
memory returned as weights, or advice to load a file unsafely."""

import collections
import contextlib
import io
import pickle
import struct
import sys
import time
import types

import numpy as np
import pytest

from defect_tf.errors import WeightsError
from defect_tf.models import torch_weights
from defect_tf.models.efficientnet_lite import load_lite_weights
from defect_tf.models.torch_weights import LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, read_legacy_state_dict


@contextlib.contextmanager
def fake_torch():
    """Modules named like PyTorch's, so pickle writes the same global names PyTorch's files hold."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*arguments):
        raise AssertionError("never called: the file is only written here")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
    torch._utils = utils
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch
    finally:
        del sys.modules["torch"], sys.modules["torch._utils"]


class Storage:
    def __init__(self, key, kind="FloatStorage"):
        self.key, self.kind = key, kind


class Tensor:
    """Pickles as PyTorch's tensors do: a call of _rebuild_tensor_v2 on (storage, offset, shape, stride, ...)."""

    def __init__(self, storage, offset, shape, stride):
        self.arguments = (storage, offset, shape, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, self.arguments


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(sys.modules["torch"], obj.kind), obj.key, "cpu", 0)
        return None


def legacy_file(state, storages: dict[str, np.ndarray], counts: dict[str, int] | None = None) -> bytes:
    """A legacy-format file: the five pickles, then each storage's element count and bytes (`counts` may lie)."""
    stream = io.BytesIO()
    with fake_torch():
        for part in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, {"little_endian": True}):
            pickle.dump(part, stream, protocol=2)
        TorchPickler(stream, protocol=2).dump(state)
        pickle.dump(list(storages), stream, protocol=2)
    for key, values in storages.items():
        stream.write(struct.pack("<q", (counts or {}).get(key, values.size)) + values.astype("<f4").tobytes())
    return stream.getvalue()


def write(tmp_path, data: bytes, name="weights.pth"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_well_formed_file_gives_its_tensors_strided_views_included(tmp_path):
    numbers = np.arange(12, dtype=np.float32)
    state = collections.OrderedDict(weight=Tensor(Storage("0"), 0, (3, 4), (4, 1)),
                                    transposed=Tensor(Storage("0"), 0, (4, 3), (1, 4)),
                                    tail=Tensor(Storage("0"), 10, (2,), (1,)),
                                    nested={"bias": Tensor(Storage("0"), 0, (0,), (1,))})
    tensors = read_legacy_state_dict(write(tmp_path, legacy_file(state, {"0": numbers})))
    np.testing.assert_array_equal(tensors["weight"], numbers.reshape(3, 4))
    np.testing.assert_array_equal(tensors["transposed"], numbers.reshape(3, 4).T)
    np.testing.assert_array_equal(tensors["tail"], [10.0, 11.0])
    assert tensors["nested.bias"].shape == (0,)


@pytest.mark.parametrize("offset, shape, stride, why", [
    (0, (63,), (1,), "reaches element 62 of a storage of 1"),  # more numbers than the storage holds
    (5, (1,), (1,), "reaches element 5 of a storage of 1"),
    (0, (2, 2), (0, 7), "reaches element 7 of a storage of 1"),
    (0, (-2,), (1,), "malformed tensor description"),
    (0, (2,), (-1,), "malformed tensor description"),
    (0, (2,), (1, 1), "malformed tensor description"),
    (-1, (1,), (1,), "malformed tensor description"),
    (0, ("2",), (1,), "malformed tensor description"),
    (0, (1,) * 9, (1,) * 9, "malformed tensor description"),
])
def test_a_tensor_outside_its_storage_is_refused_before_it_is_viewed(tmp_path, offset, shape, stride, why):
    state = {"weight": Tensor(Storage("0"), offset, shape, stride)}
    with pytest.raises(WeightsError, match=why):
        read_legacy_state_dict(write(tmp_path, legacy_file(state, {"0": np.ones(1, np.float32)})))


def test_a_storage_claiming_more_bytes_than_the_file_holds_is_refused(tmp_path):
    state = {"weight": Tensor(Storage("0"), 0, (1,), (1,))}
    data = legacy_file(state, {"0": np.ones(4, np.float32)}, counts={"0": 10**12})
    with pytest.raises(WeightsError, match="claims 1,000,000,000,000 numbers .* where 16 bytes are left"):
        read_legacy_state_dict(write(tmp_path, data))


def test_a_small_storage_spread_into_a_huge_tensor_is_refused(tmp_path):
    state = {"weight": Tensor(Storage("0"), 0, (10**6, 10**6), (0, 0))}
    with pytest.raises(WeightsError, match="would take 4,000,000,000,000 bytes"):
        read_legacy_state_dict(write(tmp_path, legacy_file(state, {"0": np.ones(1, np.float32)})))


def test_nested_shared_dicts_are_refused_at_once(tmp_path):
    level = {"weight": Tensor(Storage("0"), 0, (1,), (1,))}
    for _ in range(60):  # 2^60 paths through 60 shared dicts, a file of about a kilobyte
        level = {"a": level, "b": level}
    data = legacy_file(level, {"0": np.ones(1, np.float32)})
    assert len(data) < 2000
    started = time.monotonic()
    with pytest.raises(WeightsError, match="refused: dicts nested more than 16 deep|met twice"):
        read_legacy_state_dict(write(tmp_path, data))
    assert time.monotonic() - started < 5


def test_a_dict_met_twice_is_refused_even_when_shallow(tmp_path):
    shared = {"weight": Tensor(Storage("0"), 0, (1,), (1,))}
    data = legacy_file({"a": shared, "b": shared}, {"0": np.ones(1, np.float32)})
    with pytest.raises(WeightsError, match="'b.' is a dict met twice"):
        read_legacy_state_dict(write(tmp_path, data))


def test_a_pickle_of_too_many_operations_is_refused_before_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_weights, "MAX_PICKLE_OPCODES", 50)
    state = {f"w{i}": Tensor(Storage("0"), 0, (1,), (1,)) for i in range(20)}
    with pytest.raises(WeightsError, match="a pickle of more than 50 operations"):
        read_legacy_state_dict(write(tmp_path, legacy_file(state, {"0": np.ones(1, np.float32)})))


def test_one_storage_named_with_two_number_types_is_refused(tmp_path):
    state = {"a": Tensor(Storage("0"), 0, (1,), (1,)), "b": Tensor(Storage("0", "LongStorage"), 0, (1,), (1,))}
    with pytest.raises(WeightsError, match="named with two number types"):
        read_legacy_state_dict(write(tmp_path, legacy_file(state, {"0": np.ones(2, np.float32)})))


@pytest.mark.parametrize("data, kind", [(b"\x89PNG\r\n\x1a\n" + bytes(40), "a PNG image"),
                                        (b"", "an empty file"), (b"hello", "a text file"),
                                        (b"\x89HDF\r\n\x1a\n" + bytes(8), "an HDF5 file")])
def test_a_file_of_another_kind_is_named_and_never_advised_to_be_loaded_unsafely(tmp_path, data, kind):
    for name in ("weights.pth", "weights.npz"):
        path = write(tmp_path, data, name)
        with pytest.raises(WeightsError) as error:
            load_lite_weights(None, path)
        assert kind in str(error.value) and "pickle=True" not in str(error.value)


def test_a_damaged_npz_says_so_without_numpys_advice(tmp_path):
    path = write(tmp_path, b"PK\x03\x04" + bytes(100), "weights.npz")
    with pytest.raises(WeightsError, match="not a converted EfficientNet-Lite weights file") as error:
        load_lite_weights(None, path)
    assert "allow_pickle" not in str(error.value)


def test_a_truncated_file_is_one_error(tmp_path):
    state = {"weight": Tensor(Storage("0"), 0, (4,), (1,))}
    data = legacy_file(state, {"0": np.ones(4, np.float32)})
    for cut in (3, len(data) // 2, len(data) - 5):
        with pytest.raises(WeightsError):
            read_legacy_state_dict(write(tmp_path, data[:cut]))
