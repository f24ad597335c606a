"""Run the ``mtlcli`` command line as a user runs it.

``in_process`` calls the console entry point (``mtlcli.cli.main``: Typer parsing and the
error-to-exit-code mapping) with ``sys.argv`` set; an exception that escapes it is shown
as the interpreter would show it (``Traceback ...``), so "no traceback" assertions mean
what they say. ``in_subprocess`` runs ``python -m mtlcli`` for real signals and exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
BAD_INPUTS = TESTS_DIR / "bad_inputs"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def in_process(args: list, capsys) -> CliResult:
    """``mtlcli ARGS`` through the console entry point, in this process (no interpreter start-up)."""
    import mtlcli.cli

    saved_argv = sys.argv
    sys.argv = ["mtlcli", *map(str, args)]
    mtlcli.cli._DEBUG = False  # a previous --debug call must not leak into this one
    code = 0
    capsys.readouterr()
    try:
        mtlcli.cli.main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # what Python prints for an exception nobody handled
        sys.stderr.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv = saved_argv
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Train with one intra-op thread here and in subprocesses (``OMP_NUM_THREADS=1``):
    runs compared across processes then use the same kernels, and two threads on a
    shared two-core machine mostly wait for each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def subprocess_env(**extra: str) -> dict:
    """The current environment, with this tests folder importable (for probe algorithms)
    and one torch thread (see :func:`one_torch_thread`)."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def command(args: list) -> list[str]:
    return [sys.executable, "-m", "mtlcli", *map(str, args)]


def in_subprocess(args: list, cwd: Path, timeout: float = 180, **env: str) -> CliResult:
    done = subprocess.run(command(args), cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    return CliResult(done.returncode, done.stdout, done.stderr)


def one_error_line(result: CliResult) -> str:
    """The single ``error: ...`` line a failed command prints (asserting there is exactly one)."""
    assert result.code != 0, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def write_configs(folder: Path, files: dict[str, str]) -> Path:
    """A user configs folder (searched before the shipped one): ``{"group/name.yaml": text}``."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder
