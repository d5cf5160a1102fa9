"""Reader and writer for the IDX format of MNIST (optionally gzip-compressed, by file suffix).

Layout: two zero bytes, one type byte, one byte with the number of dimensions, then each
dimension as a big-endian uint32, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from cdae.files import atomic_path

_TYPE_CODES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dtype.newbyteorder("="): code for code, dtype in _TYPE_CODES.items()}


class IdxFormatError(ValueError):
    """The file is not a valid (possibly gzipped) IDX file."""


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IdxFormatError(
                f"{path} is not a valid gzip file ({exc}); it is probably truncated or "
                "corrupted: delete it and download or generate it again"
            ) from exc
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into a native-endian numpy array of its shape."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPE_CODES:
        raise IdxFormatError(
            f"{path} has a wrong IDX magic number {raw[:4].hex() or '(empty)'}: expected "
            "00 00 <type> <ndim>, e.g. 00000803 for MNIST images and 00000801 for labels"
        )
    dtype = _TYPE_CODES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path} is truncated inside its header")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxFormatError(
            f"{path} holds {len(raw) - header} data bytes but its header announces shape "
            f"{shape} of {dtype} ({expected} bytes): the file is truncated or corrupted"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzip-compressed when ``path`` ends in ``.gz``), atomically."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        raise TypeError(
            f"IDX cannot store dtype {array.dtype}; use one of uint8, int8, int16, int32, "
            "float32, float64"
        )
    if array.ndim > 255:
        raise ValueError("IDX stores at most 255 dimensions")
    code = _CODE_OF[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_TYPE_CODES[code]).tobytes()
    path = Path(path)
    with atomic_path(path) as tmp:
        # mtime=0 and no stored name: the same array always gives the same bytes
        tmp.write_bytes(gzip.compress(payload, 6, mtime=0) if path.suffix == ".gz" else payload)
