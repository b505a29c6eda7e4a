"""Reading the authors' released weights without Torch or PyTorch.

Two formats:
  * Torch7 `.t7` files (Context Encoders, GLCIC), read with the `torchfile`
    package. `t7_modules` flattens a network's containers (nn.Sequential,
    nngraph's gModule, ...) into its leaf modules in forward order.
  * PyTorch `.pth` files written by `torch.save` since PyTorch 1.6 (DMFN): a
    zip holding `data.pkl` (a pickle whose tensors point at storages) and one
    raw little-endian file per storage. `read_pth_state_dict` unpickles it with
    the few PyTorch names it needs mapped to NumPy, so PyTorch is never
    imported; anything else in the pickle is refused, so a file cannot run
    code on load.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
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
# PyTorch zip checkpoints
# --------------------------------------------------------------------------

# Storage classes as PyTorch pickles them, and their NumPy types. bfloat16 has
# none: its 16 bits are widened to float32 by hand.
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                   "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


def _rebuild_tensor(storage, offset, size, stride, *unused):
    del unused  # requires_grad, backward hooks, metadata
    if not size:
        return np.array(storage[offset], copy=True)
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride)).copy()


def _rebuild_parameter(data, *unused):
    del unused
    return data


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch state dict into NumPy arrays; refuses every other global."""

    def __init__(self, file, read_storage):
        super().__init__(file)
        self._read_storage = read_storage

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
        kind, storage_type, key, _location, count = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return self._read_storage(str(key), _STORAGE_DTYPES[storage_type.name], count)


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


def read_pth_state_dict(path: str) -> dict[str, np.ndarray]:
    """{parameter name: array} of a PyTorch zip checkpoint; 'module.' prefixes removed."""
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--weights {path!r} does not exist.") from error
    except zipfile.BadZipFile as error:
        raise UserError(f"--weights {path!r} is not a PyTorch zip checkpoint (PyTorch >= 1.6 "
                         "writes one; re-save an older file with torch.save(state_dict, PATH) "
                         "in a recent PyTorch).") from error
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise UserError(f"--weights {path!r}: expected one data.pkl in the zip, found "
                             f"{len(pickles)}.")
        prefix = pickles[0][:-len("data.pkl")]

        def read_storage(key: str, dtype, count: int) -> np.ndarray:
            raw = archive.read(f"{prefix}data/{key}")
            if dtype == "bfloat16":
                bits = np.frombuffer(raw, "<u2", count).astype(np.uint32) << 16
                return bits.view(np.float32)
            return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"), count)

        try:
            obj = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])), read_storage).load()
            state = _state_dict_of(obj)
        except (pickle.UnpicklingError, ValueError, KeyError) as error:
            raise UserError(f"--weights {path!r}: {error}") from error
    return {(k[len("module."):] if k.startswith("module.") else k): np.asarray(v)
            for k, v in state.items()}
