"""One process at a time in a run folder: training and resuming hold ``.lock`` (its PID).

A new run's folder is already exclusive (its ``config.yaml`` is written without replacing);
the lock also stops ``--resume`` of a run that is still training, and two resumes at once.
A lock whose process is gone (killed with SIGKILL) is stale and taken over.
"""

from __future__ import annotations

import os
from pathlib import Path

from mtlcli.errors import MtlcliError

LOCK_FILE = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def acquire(run_dir: Path) -> Path:
    """Take the run's lock or stop with one line naming the process that holds it."""
    path = Path(run_dir) / LOCK_FILE
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and _alive(holder):
                raise MtlcliError(f"run {run_dir} is in use by process {holder} (a training or resume of it is "
                                  f"still running); wait for it to end or stop it first") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        except OSError as err:
            raise MtlcliError(f"cannot lock run {run_dir}: {err.strerror or err}") from err
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return path
    raise MtlcliError(f"cannot lock run {run_dir}: another process keeps taking its lock")


def release(path: Path | None) -> None:
    if path is not None:
        Path(path).unlink(missing_ok=True)
