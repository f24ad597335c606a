"""Reader for the CIFAR-10/100 "python version" batches (pickled dicts of numpy arrays).

The batches were pickled by Python 2, so they load with ``encoding="bytes"``
(dict keys are ``bytes``). Unpickling runs code named by the file, so only the
few globals a pickled numpy array needs are allowed: a file that names anything
else is refused rather than executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mtlcli.errors import MtlcliError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 spell bytes
}

CIFAR_IMAGE_SIZE = 3 * 32 * 32


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path | str, label_key: bytes = b"labels") -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``.

    ``label_key`` is ``b"labels"`` for CIFAR-10 and ``b"fine_labels"`` for CIFAR-100.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise MtlcliError(f"{path} is not a readable CIFAR batch: {err or type(err).__name__}") from None
    except OSError as err:
        raise MtlcliError(f"cannot read {path}: {err}") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise MtlcliError(
            f"{path} is not a CIFAR batch: expected a dict with keys b'data' and {label_key!r}, got {keys}"
        )
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_IMAGE_SIZE:
        raise MtlcliError(
            f"{path} is not a CIFAR batch: b'data' must be uint8 of shape (N, {CIFAR_IMAGE_SIZE}), "
            f"got {data.dtype} {data.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise MtlcliError(
            f"{path} is not a CIFAR batch: {len(data)} images but {label_key!r} has shape {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)
