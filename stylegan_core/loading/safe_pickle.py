"""A pickle reader for checkpoint files that never runs their code and never allocates much more
than the file holds.

NVlabs network pickles store every network object as `_reconstruct_persistent_obj(meta)`, whose
stock implementation exec()s the module source in `meta`. Here the reader resolves only an
allow-list of globals, each replaced by a checked stand-in:
- a network object becomes a plain `PersistentRecord` (class name, module name, state); the
  embedded source is dropped unread and nothing outside the allow-list is ever imported;
- tensors are rebuilt from storages of plain numeric types, with their views checked against the
  storage (no out-of-bounds offset, size or stride);
- numpy arrays and scalars only with plain numeric dtypes (no object dtype: an object array's
  elements are raw pointers), with the data length checked against the shape;
- containers (dict, list, set, OrderedDict, EasyDict) as plain Python containers.
Before anything is built, a pass over the opcodes checks that every length the pickle declares lies
inside the file, and every object the allowed functions build is charged to a budget of a few
times the file size, so a small file cannot make the reader allocate gigabytes. `BUILD` (setting an
object's state) is only allowed for the numpy arrays and dtypes the reader made itself.
Every failure is a `CheckpointError` (or `UnsafeCheckpointError` for a forbidden request).
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError

MAX_RECORD_DEPTH = 64  # networks nest a few levels; a deeper (or cyclic) record is malformed
MAX_TENSOR_DIMS = 8
BUDGET_FACTOR = 3  # objects built may take at most this multiple of the file size (+ BUDGET_SLACK)
BUDGET_SLACK = 1 << 20
CONTAINER_ITEM_BYTES = 64  # what a set/dict built from an iterable is charged per item
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first object of a non-zip torch.save stream
_NUMPY_KINDS = "biuf"


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded: corrupt, truncated, or of an unsupported kind."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that asks to run or import something a weight file never needs."""


@dataclass(frozen=True)
class PersistentRecord:
    """A network object of an NVlabs pickle as plain data (its embedded module source is dropped unread)."""

    class_name: str
    module: str  # the module name NVlabs recorded (e.g. 'training.networks_stylegan3'), '' if none
    state: dict

    def _state_dict(self, key: str) -> dict:
        value = self.state.get(key) or {}
        return value if isinstance(value, dict) else {}

    @property
    def parameters(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self._state_dict("_parameters").items() if v is not None}

    @property
    def buffers(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self._state_dict("_buffers").items() if v is not None}

    @property
    def children(self) -> dict[str, Any]:
        return {k: v for k, v in self._state_dict("_modules").items() if v is not None}

    @property
    def init_kwargs(self) -> dict:
        return dict(self._state_dict("_init_kwargs"))

    def child(self, name: str) -> "PersistentRecord":
        """The sub-network `name`; CheckpointError if it is missing or not a network."""
        child = self.children.get(name)
        if not isinstance(child, PersistentRecord):
            raise CheckpointError(f"the {self.class_name} network has no {name!r} sub-network")
        return child

    def tensors(self, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
        """All parameters and buffers of this object and its children, by dotted name."""
        if depth > MAX_RECORD_DEPTH:
            raise CheckpointError(f"networks nested more than {MAX_RECORD_DEPTH} deep (a cycle?) at {prefix[:200]!r}")
        found = {prefix + str(k): v for k, v in {**self.parameters, **self.buffers}.items()}
        if not all(isinstance(v, torch.Tensor) for v in found.values()):
            raise CheckpointError(f"network {prefix.rstrip('.')[:200] or self.class_name!r} has non-tensor parameters")
        for name, child in self.children.items():
            if not isinstance(child, PersistentRecord):
                raise CheckpointError(f"network {(prefix + str(name))[:200]!r} is not a plain persistent object")
            found.update(child.tensors(f"{prefix}{name}.", depth + 1))
        return found


class _KwargsDict(dict):
    """Stands in for dnnlib.EasyDict (the kwargs container of NVlabs pickles): a plain dict."""


class _Budget:
    """Bytes the allowed functions may still allocate for one file."""

    def __init__(self, limit: int):
        self.left = limit

    def charge(self, nbytes: int, what: str) -> None:
        self.left -= max(0, int(nbytes))
        if self.left < 0:
            raise CheckpointError(f"the pickle builds more data than the file holds (at {what}); a corrupt or crafted file")


def _plain_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMPY_KINDS or dtype.hasobject \
            or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafeCheckpointError("the pickle asks for a numpy value that is not a plain number")
    return dtype


def _checked_shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) > MAX_TENSOR_DIMS \
            or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError("malformed array or tensor shape in the pickle")
    return tuple(shape)


class _NdarrayMarker:
    """What `numpy.ndarray` resolves to: accepted only as the first argument of numpy's
    `_reconstruct`, so the pickle can never call ndarray(shape, dtype, buffer) itself."""

    def __init__(self, *_args):
        raise UnsafeCheckpointError("the pickle calls numpy.ndarray directly; only plain array data is allowed")


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's own unpickler (its opcode table can be changed, unlike the C one's) with the
    allow-list, the budget and a checked BUILD. Anything else stops the load before it is touched."""

    _ALLOWED = {
        ("_codecs", "encode"): "_latin1_bytes",
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): "_persistent_record",
        ("torch._utils", "_rebuild_tensor_v2"): "_rebuild_tensor",
        ("torch._utils", "_rebuild_tensor"): "_rebuild_tensor",
        ("torch._utils", "_rebuild_parameter"): "_rebuild_parameter",
        ("torch._utils", "_rebuild_parameter_with_state"): "_rebuild_parameter",
        ("torch.storage", "_load_from_bytes"): "_storage_from_bytes",
        ("collections", "OrderedDict"): "_ordered_dict",
        ("builtins", "set"): "_set",
        ("builtins", "frozenset"): "_frozenset",
        ("__builtin__", "set"): "_set",  # protocol 2 pickles name builtins the Python 2 way
        ("__builtin__", "frozenset"): "_frozenset",
        ("dnnlib.util", "EasyDict"): "_easy_dict",
        ("dnnlib", "EasyDict"): "_easy_dict",
        ("numpy", "dtype"): "_numpy_dtype",
        ("numpy", "ndarray"): "_ndarray_marker",
        ("numpy.core.multiarray", "scalar"): "_numpy_scalar",
        ("numpy._core.multiarray", "scalar"): "_numpy_scalar",
        ("numpy.core.multiarray", "_reconstruct"): "_numpy_reconstruct",
        ("numpy._core.multiarray", "_reconstruct"): "_numpy_reconstruct",
    }

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.budget = _Budget(BUDGET_FACTOR * len(data) + BUDGET_SLACK)
        self._unbuilt: dict[int, Any] = {}  # id -> the arrays and dtypes made here that BUILD may still set

    def find_class(self, module: str, name: str) -> Any:
        method = self._ALLOWED.get((module, name))
        if method is None:
            raise UnsafeCheckpointError(
                f"the pickle asks for {str(module)[:100]}.{str(name)[:100]}, which a StyleGAN checkpoint "
                "never needs; refusing to load it")
        if method == "_ndarray_marker":
            return _NdarrayMarker
        if method == "_easy_dict":
            return _KwargsDict
        return getattr(self, method)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError("the pickle uses persistent ids, which an NVlabs network pickle never does")

    # -- stand-ins for the allowed globals ----------------------------------------------------------
    def _latin1_bytes(self, text: Any, encoding: Any = "latin1") -> bytes:
        # Protocol 2 writes bytes objects as _codecs.encode(text, 'latin1'); nothing else is needed.
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafeCheckpointError("the pickle asks for a text codec other than latin-1")
        self.budget.charge(len(text), "a bytes object")
        return text.encode("latin1")

    def _persistent_record(self, meta: Any) -> PersistentRecord:
        # Replaces torch_utils.persistence._reconstruct_persistent_obj, which would exec(meta['module_src']).
        if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
            raise CheckpointError("malformed persistent object in the pickle")
        class_name, module = meta.get("class_name"), meta.get("module_name", "")
        if not isinstance(class_name, str) or not isinstance(module, str):
            raise CheckpointError("malformed persistent object in the pickle (class or module name)")
        self.budget.charge(CONTAINER_ITEM_BYTES * len(meta["state"]), "a network object")
        return PersistentRecord(class_name[:200], module[:200], dict(meta["state"]))

    def _container(self, kind: type, items: Any) -> Any:
        if isinstance(items, (list, tuple, set, frozenset, dict)):
            self.budget.charge(CONTAINER_ITEM_BYTES * len(items), kind.__name__)
            return kind(items)
        if items is None or isinstance(items, (str, bytes)):
            return kind() if items is None else kind(items)
        raise CheckpointError(f"malformed {kind.__name__} in the pickle")

    def _set(self, items: Any = None) -> set:
        return self._container(set, items)

    def _frozenset(self, items: Any = None) -> frozenset:
        return self._container(frozenset, items)

    def _ordered_dict(self, items: Any = None) -> collections.OrderedDict:
        return self._container(collections.OrderedDict, items)

    def _storage_from_bytes(self, data: Any) -> torch.TypedStorage:
        # torch.storage._load_from_bytes would call torch.load without weights_only on these bytes.
        if not isinstance(data, (bytes, bytearray)):
            raise CheckpointError("malformed tensor storage in the pickle")
        self.budget.charge(len(data), "a tensor storage")
        return load_storage_bytes(bytes(data))

    def _rebuild_tensor(self, storage, storage_offset, size, stride, *_ignored_grad_hooks_metadata) -> torch.Tensor:
        # torch's own rebuild with checked, plain arguments only: no requires_grad, and never the
        # pickle's hooks or metadata.
        if not isinstance(storage, torch.TypedStorage) or type(storage_offset) is not int:
            raise CheckpointError("malformed tensor in the pickle")
        size, stride = _checked_shape(size), _checked_shape(stride)
        if len(size) != len(stride) or storage_offset < 0:
            raise CheckpointError("malformed tensor in the pickle (size, stride or offset)")
        with warnings.catch_warnings():  # TypedStorage's deprecation notice: it is what pickles hold
            warnings.simplefilter("ignore", UserWarning)
            items = storage.size()
        if math.prod(size) and storage_offset + sum((s - 1) * st for s, st in zip(size, stride)) >= items:
            raise CheckpointError("a tensor in the pickle reaches outside its storage")
        return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, False, collections.OrderedDict())

    def _rebuild_parameter(self, data, *_ignored_requires_grad_hooks_and_state) -> torch.Tensor:
        if not isinstance(data, torch.Tensor):
            raise CheckpointError("malformed parameter in the pickle")
        return data

    def _numpy_dtype(self, name: Any, *_align_copy) -> np.dtype:
        if not isinstance(name, str) or len(name) > 4:
            raise UnsafeCheckpointError("the pickle asks for a numpy dtype that is not a plain number")
        try:
            dtype = np.dtype(name)
        except TypeError as error:
            raise CheckpointError(f"unknown numpy dtype {name!r} in the pickle") from error
        # A fresh object: BUILD sets a dtype's state, and np.dtype(name) may be numpy's shared instance.
        dtype = _plain_dtype(dtype).newbyteorder("=")
        self._unbuilt[id(dtype)] = dtype
        return dtype

    def _numpy_scalar(self, dtype: Any, data: Any = b"") -> Any:
        if not isinstance(data, bytes) or len(data) != _plain_dtype(dtype).itemsize:
            raise UnsafeCheckpointError("the pickle asks for a numpy scalar that is not a plain number")
        return np.frombuffer(data, dtype=dtype, count=1)[0]

    def _numpy_reconstruct(self, subtype: Any, *_shape_dtype) -> np.ndarray:
        # Arrays pickle as _reconstruct(ndarray, (0,), b'b') and then BUILD with shape, dtype and data.
        if subtype is not _NdarrayMarker:
            raise UnsafeCheckpointError("the pickle asks for a numpy array subclass")
        array = np.empty(0, dtype=np.uint8)
        self._unbuilt[id(array)] = array
        return array

    # -- BUILD: only for the arrays and dtypes made above, with checked state ------------------------
    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if self._unbuilt.pop(id(target), None) is not target:
            raise UnsafeCheckpointError(f"the pickle sets the state of a {type(target).__name__}, which a "
                                        "checkpoint never needs")
        if isinstance(target, np.dtype):
            _check_dtype_state(state)
        else:
            target.__setstate__(self._checked_array_state(state))

    def _checked_array_state(self, state: Any) -> tuple:
        if not (isinstance(state, tuple) and len(state) == 5 and type(state[0]) is int and isinstance(state[3], bool)):
            raise CheckpointError("malformed numpy array in the pickle")
        version, shape, dtype, fortran, data = state
        shape, dtype = _checked_shape(shape), _plain_dtype(dtype)
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
            raise CheckpointError("a numpy array in the pickle has data of the wrong length for its shape")
        self.budget.charge(len(data), "a numpy array")
        return version, shape, dtype, fortran, data

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


def _check_dtype_state(state: Any) -> None:
    """numpy writes (3, byte order, None, None, None, -1, -1, flags) for a plain dtype; only the
    native or 'not applicable' byte order is accepted, so the dtype made earlier stays as it is."""
    if not (isinstance(state, tuple) and len(state) == 8 and state[1] in ("<", "|", "=")
            and state[2] is None and state[3] is None and state[4] is None):
        raise UnsafeCheckpointError("the pickle asks for a numpy dtype that is not a plain native number")
    if state[1] == "<" and np.dtype("=f4").byteorder not in ("=", "<"):  # pragma: no cover (big-endian hosts)
        raise CheckpointError("little-endian arrays on a big-endian machine are not supported")


# -- the pre-scan and the entry point ---------------------------------------------------------------------
def check_opcodes(stream: io.BytesIO) -> None:
    """Walk one pickle's opcodes from the stream's position without building anything: every
    declared length (strings, bytes, frames) must lie inside the data, so the unpickler never
    allocates for data that is not there. The stream is left where it was."""
    start = stream.tell()
    try:
        for opcode, _argument, _position in pickletools.genops(stream):
            if opcode.name == "STOP":
                return
    except (ValueError, struct.error, OverflowError, UnicodeDecodeError) as error:
        raise CheckpointError(f"truncated or corrupt pickle ({type(error).__name__}: {str(error)[:200]})") from error
    finally:
        stream.seek(start)
    raise CheckpointError("truncated pickle (no STOP opcode)")


def unpickle(data: bytes) -> Any:
    """The content of one pickle, read with the allow-list (see the module docstring)."""
    check_opcodes(io.BytesIO(data))
    try:
        return _RestrictedUnpickler(data).load()
    except (CheckpointError, RecursionError):  # a RecursionError here would be a bug, not a bad file
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            RuntimeError, struct.error, OverflowError, UnicodeDecodeError) as error:
        raise CheckpointError(f"truncated or corrupt pickle ({type(error).__name__}: {str(error)[:200]})") from error


def read_pickle_file(path: str | os.PathLike) -> Any:
    """A pickle file's content, read safely: network objects become PersistentRecords."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CheckpointError(f"{Path(path).name}: cannot read the file ({error.strerror or error})") from error
    try:
        return unpickle(data)
    except CheckpointError as error:
        raise type(error)(f"{Path(path).name}: {error}") from error


# -- tensor storages (torch's legacy format inside NVlabs pickles) ------------------------------------
# torch.save(storage) in the legacy format: pickles of the magic number, the protocol version and
# system info, the storage as a persistent id ('storage', type, key, location, numel[, view]), the
# list of keys; then per key its element count (int64) and raw little-endian data. Read here, with
# every size checked, instead of by torch's loader (which allocates the declared size first).
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _StorageHeaderReader(pickle._Unpickler):
    """Reads one small pickle of a legacy torch.save stream; storage types become their names and
    the persistent id is returned as plain data."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise UnsafeCheckpointError(f"a tensor storage in the pickle asks for {str(module)[:100]}.{str(name)[:100]}")

    def persistent_load(self, pid: Any) -> Any:
        return ("persistent", pid)


def _small_pickle(stream: io.BytesIO) -> Any:
    check_opcodes(stream)
    return _StorageHeaderReader(stream).load()


def load_storage_bytes(data: bytes) -> torch.TypedStorage:
    """A storage from the bytes of a legacy torch.save(storage), every size checked against the data."""
    stream = io.BytesIO(data)
    try:
        magic, _protocol, system, storage, keys = (_small_pickle(stream) for _ in range(5))
        pid = storage[1] if isinstance(storage, tuple) and len(storage) == 2 and storage[0] == "persistent" else None
        if magic != TORCH_LEGACY_MAGIC or not isinstance(system, dict) or system.get("little_endian") is not True \
                or not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage" and pid[1] in _STORAGE_DTYPES
                        and type(pid[4]) is int and pid[4] >= 0 and keys == [pid[2]] and pid[5:] in ((), (None,))):
            raise CheckpointError("a tensor storage in the pickle is not one plain little-endian storage")
        dtype, numel = _STORAGE_DTYPES[pid[1]], pid[4]
        (stored,) = struct.unpack("<q", stream.read(8))
        raw = stream.read(numel * dtype.itemsize) if stored == numel else b""
        if len(raw) != numel * dtype.itemsize or stream.read(1):
            raise CheckpointError(f"a tensor storage declares {numel * dtype.itemsize:,} bytes of data that are "
                                  "not (exactly) there")
    except (CheckpointError, RecursionError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, OverflowError, UnicodeDecodeError) as error:
        raise CheckpointError(f"corrupt tensor storage in the pickle ({type(error).__name__})") from error
    values = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
    return torch.TypedStorage(wrap_storage=values.untyped_storage(), dtype=dtype, _internal=True)


# -- legacy torch.save files: the storages they declare, before torch allocates them ------------------
class _Anything(dict):
    """Stands in for every object of a legacy torch file while its declarations are read: accepts
    any arguments and items, builds nothing."""

    def __init__(self, *_args, **_kwargs):
        super().__init__()

    def append(self, _item: Any) -> None:
        pass

    def extend(self, _items: Any) -> None:
        pass


class _DeclarationReader(pickle._Unpickler):
    """Walks the main pickle of a legacy torch.save file collecting its storage declarations."""

    def __init__(self, stream: io.BytesIO):
        super().__init__(stream)
        self.declared: list[Any] = []

    def find_class(self, module: str, name: str) -> Any:
        return name if module == "torch" and name in _STORAGE_DTYPES else _Anything

    def persistent_load(self, pid: Any) -> Any:
        self.declared.append(pid)
        return _Anything()

    def load_build(self) -> None:
        self.stack.pop()

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


def check_legacy_torch_sizes(data: bytes) -> None:
    """CheckpointError unless the storages a legacy torch.save stream declares fit in its data
    (torch's loader allocates each declared size before reading it) and the lengths its pickles
    declare lie inside it."""
    stream = io.BytesIO(data)
    try:
        for _ in range(3):  # magic number, protocol version, system info
            _small_pickle(stream)
        check_opcodes(stream)
        reader = _DeclarationReader(stream)
        reader.load()
        check_opcodes(stream)  # the list of storage keys torch reads next
    except (CheckpointError, RecursionError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            struct.error, OverflowError, UnicodeDecodeError) as error:
        raise CheckpointError(f"corrupt torch file ({type(error).__name__}: {str(error)[:200]})") from error
    declared = 0
    for pid in reader.declared:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and isinstance(pid[1], str) and pid[1] in _STORAGE_DTYPES
                and type(pid[4]) is int and pid[4] >= 0):
            raise CheckpointError("malformed tensor storage declaration in the torch file")
        declared += pid[4] * _STORAGE_DTYPES[pid[1]].itemsize
    if declared > len(data):
        raise CheckpointError(f"the torch file declares {declared:,} bytes of tensors but holds {len(data):,}")
