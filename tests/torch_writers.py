"""Writers of Torch7 and PyTorch checkpoint files, for testing the converters without Torch.

`write_t7` follows torch7's File.lua binary format (little-endian, 8-byte
longs); `write_pth` writes the zip layout of `torch.save` (PyTorch >= 1.6): a
pickle whose tensors are `torch._utils._rebuild_tensor_v2` calls on storages
stored as raw files. Both write only what the suite's readers must handle.
"""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np


class T7Object:
    """A Torch class instance (e.g. an nn module): a type name and a table of fields."""

    def __init__(self, typename, **fields):
        self.typename, self.fields = typename, fields


class _T7Writer:
    def __init__(self, f):
        self.f, self.index = f, 0

    def _next_index(self):
        self.index += 1
        return self.index

    def int(self, v):
        self.f.write(struct.pack("<i", v))

    def string(self, s):
        data = s.encode()
        self.int(len(data))
        self.f.write(data)

    def obj(self, value):
        if value is None:
            self.int(0)
        elif isinstance(value, bool):
            self.int(5)
            self.int(int(value))
        elif isinstance(value, (int, float)):
            self.int(1)
            self.f.write(struct.pack("<d", float(value)))
        elif isinstance(value, str):
            self.int(2)
            self.string(value)
        elif isinstance(value, np.ndarray):
            self.tensor(np.ascontiguousarray(value, np.float32))
        elif isinstance(value, T7Object):
            self.int(4)
            self.int(self._next_index())
            self.string("V 1")
            self.string(value.typename)
            self.obj(dict(value.fields))
        elif isinstance(value, (dict, list)):
            items = value.items() if isinstance(value, dict) else enumerate(value, start=1)
            items = list(items)
            self.int(3)
            self.int(self._next_index())
            self.int(len(items))
            for key, item in items:
                self.obj(key)
                self.obj(item)
        else:
            raise TypeError(f"cannot write {type(value)}")

    def tensor(self, array):
        self.int(4)
        self.int(self._next_index())
        self.string("V 1")
        self.string("torch.FloatTensor")
        self.int(array.ndim)
        strides = [s // array.itemsize for s in array.strides]
        self.f.write(struct.pack(f"<{array.ndim}q", *array.shape))
        self.f.write(struct.pack(f"<{array.ndim}q", *strides))
        self.f.write(struct.pack("<q", 1))  # storage offset, 1-based
        self.int(4)
        self.int(self._next_index())
        self.string("V 1")
        self.string("torch.FloatStorage")
        self.f.write(struct.pack("<q", array.size))
        self.f.write(array.astype("<f4").tobytes())


def write_t7(path, value):
    with open(path, "wb") as f:
        _T7Writer(f).obj(value)


def conv(n_in, n_out, k, stride=1, pad=0, dilation=None, rng=None, typename=None):
    """An nn.SpatialConvolution (or SpatialDilatedConvolution) with random weights."""
    fields = dict(nInputPlane=n_in, nOutputPlane=n_out, kW=k, kH=k, dW=stride, dH=stride,
                  padW=pad, padH=pad, weight=rng.normal(0, 0.3, (n_out, n_in, k, k)),
                  bias=rng.normal(0, 0.1, n_out))
    if dilation is not None:
        fields.update(dilationW=dilation, dilationH=dilation)
        return T7Object(typename or "nn.SpatialDilatedConvolution", **fields)
    return T7Object(typename or "nn.SpatialConvolution", **fields)


def full_conv(n_in, n_out, k, stride, pad, rng):
    return T7Object("nn.SpatialFullConvolution", nInputPlane=n_in, nOutputPlane=n_out, kW=k, kH=k,
                    dW=stride, dH=stride, padW=pad, padH=pad, adjW=0, adjH=0,
                    weight=rng.normal(0, 0.3, (n_in, n_out, k, k)), bias=rng.normal(0, 0.1, n_out))


def batch_norm(channels, rng):
    return T7Object("nn.SpatialBatchNormalization", eps=1e-5, momentum=0.1, affine=True,
                    weight=rng.uniform(0.5, 1.5, channels), bias=rng.normal(0, 0.1, channels),
                    running_mean=rng.normal(0, 0.1, channels),
                    running_var=rng.uniform(0.5, 1.5, channels))


def sequential(*modules):
    return T7Object("nn.Sequential", modules=list(modules))


# --------------------------------------------------------------------------
# PyTorch zip checkpoints
# --------------------------------------------------------------------------

def write_pth(path, state_dict, folder="archive"):
    """Writes {name: float32 array} as torch.save(OrderedDict) would, PyTorch not needed."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", \
        "_rebuild_tensor_v2"
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    utils._rebuild_tensor_v2, torch.FloatStorage, torch._utils = (_rebuild_tensor_v2,
                                                                  FloatStorage, utils)
    storages = []

    class Tensor:
        def __init__(self, array):
            self.array = np.ascontiguousarray(array, np.float32)

        def __reduce__(self):
            key = str(len(storages))
            storages.append((key, self.array))
            stride = tuple(s // 4 for s in self.array.strides)
            return (_rebuild_tensor_v2, (("storage", FloatStorage, key, "cpu", self.array.size),
                                         0, self.array.shape, stride, False,
                                         collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return obj if isinstance(obj, tuple) and obj and obj[0] == "storage" else None

    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(collections.OrderedDict(
            (k, Tensor(v)) for k, v in state_dict.items()))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", buffer.getvalue())
        archive.writestr(f"{folder}/byteorder", "little")
        archive.writestr(f"{folder}/version", "3\n")
        for key, array in storages:
            archive.writestr(f"{folder}/data/{key}", array.astype("<f4").tobytes())
