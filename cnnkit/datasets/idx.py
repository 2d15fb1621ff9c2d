"""The IDX file format of MNIST and Fashion-MNIST, read and written with strict checks.

An IDX file is a 4-byte magic number -- two zero bytes, a data type code and the
number of dimensions -- then each dimension's size as a big-endian uint32, then
the values in C order, big-endian. Files may be gzip-compressed (recognised by
their content, whatever their name).
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from typing import Any

import numpy as np

from .. import backend

IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(np.int16),
    0x0C: np.dtype(np.int32),
    0x0D: np.dtype(np.float32),
    0x0E: np.dtype(np.float64),
}
_TYPE_CODES = {dtype: code for code, dtype in IDX_TYPES.items()}
_KNOWN_TYPES = ", ".join(f"0x{code:02X} {dtype}" for code, dtype in IDX_TYPES.items())
_GZIP_MAGIC = b"\x1f\x8b"


def _file_bytes(path: str) -> bytes:
    with open(path, "rb") as file:
        raw = file.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"read_idx: {path} looks gzip-compressed but cannot be decompressed: {error}") from error


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a NumPy array.

    Args:
        path: the file.

    Returns:
        An array of the shape and dtype the header declares (uint8, int8, int16,
        int32, float32 or float64), in native byte order.

    Raises:
        ValueError: naming the file, when the magic number is malformed, the type
            code is unknown, or the data is shorter or longer than the header says.
    """
    path = os.fspath(path)
    data = _file_bytes(path)

    def invalid(what: str) -> ValueError:
        return ValueError(f"read_idx: {path} is not a valid IDX file: {what}")

    if len(data) < 4:
        raise invalid(f"it holds {len(data)} bytes, fewer than the 4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise invalid(f"the magic number must start with two zero bytes, got 0x{data[:4].hex().upper()}")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise invalid(f"unknown data type code 0x{code:02X} (known: {_KNOWN_TYPES})")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise invalid(f"the header declares {ndim} dimensions, which need {header_size} header bytes, "
                      f"but the file holds only {len(data)} bytes")
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise invalid(f"the file is {problem}: shape {shape} of {dtype} needs {expected} data bytes "
                      f"after the {header_size}-byte header, found {found}")
    values = np.frombuffer(data, dtype=dtype.newbyteorder(">"), count=math.prod(shape), offset=header_size)
    return values.reshape(shape).astype(dtype)


def write_idx(path: str | os.PathLike, array: Any) -> None:
    """Write an array as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: the file to create (overwritten if it exists).
        array: NumPy or CuPy array of dtype uint8, int8, int16, int32, float32 or
            float64, with at most 255 dimensions each smaller than 2**32.

    Raises:
        ValueError: the dtype has no IDX type code, or the shape does not fit the header.
    """
    path = os.fspath(path)
    array = np.ascontiguousarray(backend.to_numpy(array))
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _TYPE_CODES:
        raise ValueError(f"write_idx: array dtype must be one of {', '.join(str(d) for d in _TYPE_CODES)}, "
                         f"got {array.dtype}")
    if array.ndim > 255 or any(size >= 2**32 for size in array.shape):
        raise ValueError(f"write_idx: IDX allows at most 255 dimensions each below 2**32, got shape {array.shape}")
    header = bytes([0, 0, _TYPE_CODES[dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as file:
        file.write(payload)
