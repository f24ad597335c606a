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
    # Plain (click) help: laying it out with rich costs more than the rest of start-up
    # together (bench/cli_latency.py).
    rich_markup_mode=None,
)

_DEBUG = False


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")] = False,
) -> None:
    global _DEBUG
    _DEBUG = debug


@app.command(short_help="Compose an experiment config, check it, and train.")
def train(
    experiment: Annotated[Optional[str], typer.Argument(help="Experiment name (configs/experiment/NAME.yaml) or path to a YAML file.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Overrides: key=value, group=option, +new.key=value, ++key=value, ~key.", show_default=False)] = None,
    config_dir: Annotated[Optional[Path], typer.Option("--config-dir", help="Your configs folder, searched before the shipped one (default: ./configs).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this output directory.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-epoch lines; only the summary.")] = False,
) -> None:
    """Compose an experiment config, check it, and train."""
    from mtlcli.experiment import train_command

    train_command(experiment, overrides or [], config_dir=config_dir, resume=resume, quiet=quiet)


@app.command(short_help="Test a finished run's saved model on each task.")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run's output directory.")],
    eval_tasks: Annotated[Optional[list[int]], typer.Option("--eval-tasks", help="Task id to evaluate (repeatable; default: the run's eval_tasks).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Checkpoint file (default: RUN_DIR/checkpoints/last.pt).")] = None,
) -> None:
    """Rebuild a run's model from its saved config, load its weights, and test each task."""
    from mtlcli.experiment import evaluate_command

    evaluate_command(run_dir, eval_tasks=eval_tasks, checkpoint=checkpoint)


@app.command("new-algorithm", short_help="Generate an algorithm's config, or scaffold a new algorithm.")
def new_algorithm(
    target: Annotated[Optional[str], typer.Argument(help="Algorithm class: a dotted path (mypkg.algos.MyAlgo) or a built-in's name (JointLearning).", show_default=False)] = None,
    config_dir: Annotated[Path, typer.Option("--config-dir", help="Configs folder; the file goes to CONFIG_DIR/mtl_algorithm/.")] = Path("configs"),
    name: Annotated[Optional[str], typer.Option("--name", help="File name without .yaml (default: the class's config_name, else its name in snake_case).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    update: Annotated[bool, typer.Option("--update", help="Merge into the existing file: keep its values and comments, add new fields.")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print instead of writing.")] = False,
    all_builtins: Annotated[bool, typer.Option("--all", help="One config for every built-in algorithm.")] = False,
    create: Annotated[Optional[Path], typer.Option("--create", help="Scaffold a new algorithm: write this .py module (e.g. mypkg/algos/my_algo.py), its config and its test.", show_default=False)] = None,
    tests_dir: Annotated[Path, typer.Option("--tests-dir", help="Where --create writes the test.")] = Path("tests"),
) -> None:
    """Generate an algorithm's config from its constructor signature, or scaffold a new algorithm."""
    from mtlcli.scaffold import new_algorithm as run

    run(target, config_dir=config_dir, name=name, force=force, update=update, stdout=stdout,
        all_builtins=all_builtins, create=create, tests_dir=tests_dir,
        echo=typer.echo, warn=lambda text: typer.echo(text, err=True))


@app.command(short_help="Check configs; report each problem as path:line:col.")
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="YAML files or folders to check (default: configs/).", show_default=False)] = None,
    output_format: Annotated[str, typer.Option("--format", help="Output: text (path:line:col lines) or json.")] = "text",
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1) on warnings too.")] = False,
) -> None:
    """Check configs against their _target_ signatures; report each problem as path:line:col.

    Exit code: 0 clean, 1 problems found, 2 usage error.
    """
    from mtlcli.validate import validate_command

    raise typer.Exit(validate_command(paths or [], output_format=output_format, strict=strict, echo=typer.echo))


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
