"""How long the CLI takes to start, next to the imports it cannot avoid.

Runs each command several times in fresh processes and prints the median wall
time of:

* ``python -c "import typer"`` and ``python -c "import torch"`` (the floors);
* ``mtlcli --help``                       target: within 0.1 s of importing typer;
* ``mtlcli validate <shipped configs>``   target: within 1 s of importing torch;
* ``mtlcli new-algorithm mtlcli.algorithms.JointLearning --stdout``.

Usage: python bench/cli_latency.py [--repeat N]
A benchmark, not a test: it prints numbers and whether each target is met.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def mtlcli_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m mtlcli``."""
    script = Path(sys.executable).parent / "mtlcli"
    if script.exists():
        return [str(script)]
    found = shutil.which("mtlcli")
    return [found] if found else [sys.executable, "-m", "mtlcli"]


def wall_time(argv: list[str], repeat: int) -> float:
    """Median seconds of ``repeat`` runs (after one warm-up run that fills the OS file cache)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr.decode()}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median reported)")
    args = parser.parse_args()

    from mtlcli.resources import shipped_dir

    cli = mtlcli_command()
    configs = str(shipped_dir("configs"))
    commands = {
        "import typer": [sys.executable, "-c", "import typer"],
        "import torch": [sys.executable, "-c", "import torch"],
        "mtlcli --help": [*cli, "--help"],
        "mtlcli validate configs/": [*cli, "validate", configs],
        "mtlcli new-algorithm --stdout": [*cli, "new-algorithm", "mtlcli.algorithms.JointLearning", "--stdout"],
    }
    times = {}
    for label, argv in commands.items():
        times[label] = wall_time(argv, args.repeat)
        print(f"{label:32s} {times[label]:7.3f} s")

    print()
    checks = [
        ("mtlcli --help - import typer", times["mtlcli --help"] - times["import typer"], 0.1),
        ("validate configs/ - import torch", times["mtlcli validate configs/"] - times["import torch"], 1.0),
        ("new-algorithm - import torch", times["mtlcli new-algorithm --stdout"] - times["import torch"], None),
    ]
    for label, difference, target in checks:
        verdict = "" if target is None else f"  target <= {target:.1f} s: {'met' if difference <= target else 'MISSED'}"
        print(f"{label:32s} {difference:+7.3f} s{verdict}")


if __name__ == "__main__":
    main()
