"""Locate the shipped ``configs/`` and ``templates/``.

In a source checkout they sit next to the package; after a (non-editable)
``pip install`` they are installed as data files under ``<prefix>/share/mtlcli``.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def shipped_dir(name: str) -> Path:
    """The shipped ``configs`` or ``templates`` folder."""
    candidates = [_SOURCE_ROOT / name, Path(sys.prefix) / "share" / "mtlcli" / name]
    try:  # user or custom-prefix installs: ask the installed distribution
        from importlib.metadata import distribution

        for file in distribution("mtlcli").files or ():
            parts = Path(file).parts
            if "mtlcli" in parts and name in parts and "share" in parts:
                located = Path(file.locate())
                while located.name != name:
                    located = located.parent
                candidates.append(located)
                break
    except Exception:  # not installed as a distribution (plain checkout)
        pass
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"mtlcli's shipped {name}/ folder was not found (looked in {candidates[0]})")


def config_search_path(user_dir: Path | None = None) -> list[Path]:
    """Config folders searched in order: the user's own (``./configs``), then the shipped one."""
    user = Path(user_dir) if user_dir else Path.cwd() / "configs"
    shipped = shipped_dir("configs")
    paths = []
    if user.is_dir() and user.resolve() != shipped.resolve():
        paths.append(user)
    paths.append(shipped)
    return paths
