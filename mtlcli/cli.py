"""The ``mtlcli`` command line. Thin: parse, call one module, map errors to exit codes.

Heavy imports (torch) happen inside the commands that need them, so ``--help``
stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mtlcli.errors import EXIT_INTERRUPTED, MtlcliError

app = typer.Typer(
    name="mtlcli",
    help="Multi-task learning experiments: generate and validate configs, train, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEBUG = False


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")] = False,
) -> None:
    global _DEBUG
    _DEBUG = debug


@app.command()
def train(
    experiment: Annotated[Optional[str], typer.Argument(help="Experiment name (configs/experiment/NAME.yaml) or path to a YAML file.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Overrides: key=value, group=option, +new.key=value, ~key.", show_default=False)] = None,
    config_dir: Annotated[Optional[Path], typer.Option("--config-dir", help="Your configs folder, searched before the shipped one (default: ./configs).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this output directory.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-epoch lines; only the summary.")] = False,
) -> None:
    """Compose an experiment config, check it, and train."""
    from mtlcli.experiment import train_command

    train_command(experiment, overrides or [], config_dir=config_dir, resume=resume, quiet=quiet)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run's output directory.")],
    eval_tasks: Annotated[Optional[list[int]], typer.Option("--eval-tasks", help="Task id to evaluate (repeatable; default: the run's eval_tasks).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Checkpoint file (default: RUN_DIR/checkpoints/last.pt).")] = None,
) -> None:
    """Rebuild a run's model from its saved config, load its weights, and test each task."""
    from mtlcli.experiment import evaluate_command

    evaluate_command(run_dir, eval_tasks=eval_tasks, checkpoint=checkpoint)


def main() -> None:
    """Console entry point: user errors become one line and a non-zero exit code.

    Usage errors (unknown command, bad option) are reported by Typer itself (exit 2).
    """
    try:
        app()
    except MtlcliError as err:
        if _DEBUG:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        if _DEBUG:
            raise
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
