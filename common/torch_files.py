"""Reading the authors' released weights without Torch or PyTorch.

Two formats:
  * Torch7 `.t7` files (Context Encoders, GLCIC), read with the `torchfile`
    package. `t7_modules` flattens a network's containers (nn.Sequential,
    nngraph's gModule, ...) into its leaf modules in forward order.
  * PyTorch `.pth` files in both of `torch.save`'s formats: the zip written
    since PyTorch 1.6 (DMFN, torchvision, pytorch-fid), holding `data.pkl` (a
    pickle whose tensors point at storages) and one raw little-endian file per
    storage; and the legacy stream written before (the LPIPS linear layers): a
    few pickles, then every storage's bytes. `read_pth_state_dict` unpickles
    either with the few PyTorch names it needs mapped to NumPy, so PyTorch is
    never imported; anything else in the pickle is refused, so a file cannot
    run code on load.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import zipfile

import numpy as np

from common.errors import UserError


def sha256(path: str) -> str:
    """Hex SHA-256 of a file (how released weights are usually checksummed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# Torch7
# --------------------------------------------------------------------------

def _typename(module) -> str:
    """A Torch7 object's class name ("nn.SpatialConvolution"); "table" for a plain table
    (torchfile's tables answer None for any attribute they lack)."""
    typename = getattr(module, "torch_typename", None)
    if not callable(typename):
        return "table"
    name = typename()
    return name.decode() if isinstance(name, bytes) else name


def load_t7(path: str):
    """The object stored in a Torch7 file (tables as dicts/lists, tensors as arrays)."""
    import torchfile

    try:
        return torchfile.load(path, utf8_decode_strings=True)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--weights {path!r} does not exist.") from error
    except Exception as error:  # torchfile raises bare exceptions for a damaged file
        raise UserError(f"--weights {path!r} is not a readable Torch7 file: {error}") from error


def t7_modules(network) -> list[tuple[str, object]]:
    """(type name, module) of every leaf module, containers flattened, in forward order.

    Type names drop the package: 'nn.SpatialConvolution' and
    'cudnn.SpatialConvolution' both give 'SpatialConvolution'.
    """
    children = getattr(network, "modules", None) if hasattr(network, "torch_typename") else None
    if children:
        return [leaf for child in children for leaf in t7_modules(child)]
    return [(_typename(network).rsplit(".", 1)[-1], network)]


def t7_field(module, name: str, default=None):
    """A field of a Torch7 module (tensors as float32 arrays)."""
    try:
        value = module[name]
    except (KeyError, AttributeError):
        return default
    return np.asarray(value, np.float32) if isinstance(value, np.ndarray) else value


# --------------------------------------------------------------------------
# PyTorch checkpoints: the zip format and the legacy one
# --------------------------------------------------------------------------

# Storage classes as PyTorch pickles them, and their NumPy types. bfloat16 has
# none: its 16 bits are widened to float32 by hand.
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                   "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}

# The legacy format (torch.save before PyTorch 1.6, or with
# _use_new_zipfile_serialization=False) starts with these two pickled numbers.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


def _item_size(dtype) -> int:
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _decode_storage(raw: bytes, dtype, count: int) -> np.ndarray:
    """`count` little-endian elements of `dtype` from `raw`."""
    if len(raw) < count * _item_size(dtype):
        raise ValueError(f"a storage holds {len(raw)} bytes, {count} elements expected")
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, "<u2", count).astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"), count)


class _Storage:
    """A storage named in the pickle; `array` is filled when its bytes are read
    (at once in a zip file, after the whole pickle in a legacy file)."""

    def __init__(self, dtype, count: int):
        self.dtype, self.count, self.array = dtype, count, None


class _Tensor:
    """A tensor's view of a storage, made into an array once the storage is read."""

    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), stride

    def to_array(self) -> np.ndarray:
        data = self.storage.array
        if not self.size:
            return np.array(data[self.offset], copy=True)
        itemsize = data.dtype.itemsize
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.size) > 0 and last >= data.size:
            raise ValueError(f"a tensor of shape {self.size} reaches past its storage")
        return np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size,
            strides=tuple(s * itemsize for s in self.stride)).copy()


def _rebuild_tensor(storage, offset, size, stride, *unused):
    del unused  # requires_grad, backward hooks, metadata
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
    del unused
    return data


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _as_text(value) -> str:
    """Legacy files written by Python 2 pickle some names as bytes."""
    return value.decode("ascii") if isinstance(value, bytes) else value


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch state dict into `_Tensor`s; refuses every other global.

    `storages` collects the storages by key; the caller fills their arrays.
    """

    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state dict")

    def persistent_load(self, pid):
        # zip: ("storage", type, key, location, count);
        # legacy: ("storage", type, key, location, count, view_metadata).
        if _as_text(pid[0]) != "storage" or len(pid) not in (5, 6) \
                or not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (PyTorch < 0.4 files) are not supported")
        key, dtype = str(_as_text(pid[2])), _STORAGE_DTYPES[pid[1].name]
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, int(pid[4]))
        return self.storages[key]


def _arrays_of(obj):
    """`obj` with every `_Tensor` in it (dicts, lists, tuples) made into an array."""
    if isinstance(obj, _Tensor):
        return obj.to_array()
    if isinstance(obj, dict):
        return type(obj)((k, _arrays_of(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_arrays_of(v) for v in obj)
    return obj


def _state_dict_of(obj) -> dict:
    """The {name: array} inside what torch.save stored (a state dict or a dict holding one)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, np.ndarray) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "params", "generator", "netG"):
            if key in obj:
                return _state_dict_of(obj[key])
    raise UserError("holds no state dict of arrays (expected {name: tensor}, or a dict with "
                     "'state_dict' or 'model').")


def _load_zip(archive: zipfile.ZipFile):
    """The unpickled object of a zip checkpoint, its storages read."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise ValueError(f"expected one data.pkl in the zip, found {len(pickles)}")
    prefix = pickles[0][:-len("data.pkl")]
    unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])))
    obj = unpickler.load()
    for key, storage in unpickler.storages.items():
        storage.array = _decode_storage(archive.read(f"{prefix}data/{key}"), storage.dtype,
                                        storage.count)
    return obj


def _load_legacy(f):
    """The unpickled object of a legacy checkpoint, its storages read.

    Layout: pickles of the magic number, the protocol version and a dict of
    system facts; the pickle of the object; the pickle of the storage keys in
    the order their data follows; then per storage an int64 element count and
    its raw bytes.
    """
    header = _PlainUnpickler(f)  # numbers and a dict of sizes: no globals
    try:
        magic = header.load()
    except Exception:  # any bytes at all: pickle raises many kinds of error
        magic = None
    if magic != LEGACY_MAGIC_NUMBER:
        raise ValueError("neither the zip format of PyTorch >= 1.6 nor the legacy format")
    if header.load() != LEGACY_PROTOCOL_VERSION:
        raise ValueError("unknown legacy protocol version")
    system = header.load()
    if not (isinstance(system, dict) and system.get("little_endian", True)):
        raise ValueError("written on a big-endian machine; re-save it on a little-endian one")
    unpickler = _StateDictUnpickler(f)
    obj = unpickler.load()
    for key in _PlainUnpickler(f).load():
        storage = unpickler.storages[str(_as_text(key))]
        (count,) = struct.unpack("<q", f.read(8))
        if count != storage.count:
            raise ValueError(f"storage {key} holds {count} elements, the pickle says "
                             f"{storage.count}")
        storage.array = _decode_storage(f.read(count * _item_size(storage.dtype)),
                                        storage.dtype, count)
    return obj


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data (numbers, strings, lists, dicts); refuses every global."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a checkpoint")


def state_array(state: dict, key: str, shape: tuple, source: str,
                question: str = "Is it the right file?") -> np.ndarray:
    """state[key] as float32, after checking it is there with `shape`; errors name
    `source` (the flag and path the state dict came from) and ask `question`."""
    if key not in state:
        raise UserError(f"{source} has no {key!r}: expected {shape}. {question}")
    value = np.asarray(state[key], np.float32)
    if value.shape != tuple(shape):
        raise UserError(f"{source}: {key!r} has shape {value.shape}, expected {tuple(shape)}.")
    return value


def read_pth_state_dict(path: str, flag: str = "--weights") -> dict[str, np.ndarray]:
    """{parameter name: array} of a PyTorch checkpoint, zip or legacy; 'module.'
    prefixes removed. `flag` names where the path came from in errors."""
    try:
        with open(path, "rb") as f:
            if zipfile.is_zipfile(f):
                with zipfile.ZipFile(f) as archive:
                    obj = _load_zip(archive)
            else:
                f.seek(0)
                obj = _load_legacy(f)
        state = _state_dict_of(_arrays_of(obj))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{flag} {path!r} does not exist.") from error
    except (pickle.UnpicklingError, ValueError, KeyError, EOFError, struct.error,
            zipfile.BadZipFile, UserError) as error:
        raise UserError(f"{flag} {path!r} is not a readable PyTorch checkpoint: {error}") \
            from error
    return {(k[len("module."):] if k.startswith("module.") else k): np.asarray(v)
            for k, v in state.items()}
