"""Checkpoints: plain tensors and containers only, loadable with ``weights_only=True``,
written atomically so a crash mid-write never replaces the previous good one."""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from mtlcli.errors import MtlcliError

FORMAT_VERSION = 1


def capture_rng_state() -> dict:
    """Every RNG the training loop draws from, as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file in the same folder + rename)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({"format_version": FORMAT_VERSION, **payload}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # a process killed mid-write (SIGKILL) leaves its temporary file; only one writer
        # saves a run's checkpoint, so any left now is such a leftover
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
    except OSError as err:
        raise MtlcliError(f"cannot write checkpoint {path}: {err.strerror or err}; the previous checkpoint is unchanged") from err


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; clear errors for missing or damaged files.

    Only tensors and plain containers are accepted (``weights_only=True``): a checkpoint
    from elsewhere cannot run code on load.
    """
    path = Path(path)
    if path.is_dir():
        raise MtlcliError(f"checkpoint {path} is a folder; expected a .pt file")
    if not path.is_file():
        raise MtlcliError(f"checkpoint not found: {path}")
    # torch.save writes a zip archive whose index sits at the end: a cut-off file has none.
    if not zipfile.is_zipfile(path):
        raise MtlcliError(f"checkpoint {path} is corrupt or truncated (not a complete PyTorch checkpoint archive)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise MtlcliError(f"checkpoint {path} holds pickled Python objects that safe loading refuses "
                          f"({_unpickler_reason(err)}); mtlcli checkpoints hold only tensors and plain values") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MtlcliError(f"checkpoint {path} is corrupt or truncated ({first_line[:120]})") from err
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION or "model" not in payload:
        raise MtlcliError(f"{path} is not an mtlcli checkpoint (format version {FORMAT_VERSION})")
    return payload


def _unpickler_reason(err: Exception) -> str:
    """The one useful fact in torch's long weights-only refusal: which global it met."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    return f"it refers to {found.group(1)}" if found else "not a weights-only checkpoint"
