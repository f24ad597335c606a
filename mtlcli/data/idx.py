"""Reader for IDX files (the MNIST family's format), raw or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions n, then n
big-endian uint32 sizes, then the values in big-endian, C order. A file whose
data length differs from what its header announces is corrupt, not merely odd,
and is refused.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mtlcli.errors import MtlcliError

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when the name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise MtlcliError(f"cannot read {path}: {err}") from None


def parse_idx(content: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """Decode IDX ``content`` into a new array of its declared type and shape (native byte order)."""
    if len(content) < 4:
        raise MtlcliError(f"{path} is not an IDX file: only {len(content)} bytes")
    zero0, zero1, type_code, ndim = content[:4]
    if zero0 != 0 or zero1 != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise MtlcliError(
            f"{path} is not an IDX file: bad magic number 0x{content[:4].hex()} "
            "(expected 0x0000, a type code 08/09/0B/0C/0D/0E and a dimension count)"
        )
    header_len = 4 + 4 * ndim
    if len(content) < header_len:
        raise MtlcliError(f"{path} is truncated: its header announces {ndim} dimensions but the file ends")
    shape = tuple(int(v) for v in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(content) - header_len
    if actual != expected:
        state = "truncated" if actual < expected else "corrupt (trailing bytes)"
        shape_text = "x".join(map(str, shape))
        raise MtlcliError(
            f"{path} is {state}: its header announces {shape_text} values of {dtype.itemsize} byte(s) "
            f"({expected} bytes) but {actual} bytes follow"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable native-order copy


def read_idx(path: Path | str) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array."""
    path = Path(path)
    return parse_idx(read_bytes(path), path)
