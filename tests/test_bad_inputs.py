"""The bad-input corpus (files in ``tests/bad_inputs/``, plus overrides, checkpoints and
command lines): each mistake ends in exit code 1, one ``error:`` line naming the problem
(with ``path:line:col`` for config files), and no traceback unless ``--debug``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mtlcli.experiment import train_command
from run_cli import BAD_INPUTS, in_process, in_subprocess, one_error_line
from run_cli import one_torch_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def where(name: str, line_has: str, column_at: str) -> str:
    """``path:line:col`` of ``column_at`` on the first line of corpus file ``name`` that
    contains ``line_has``, comments aside (computed from the file, so the expected position is
    checked, not copied)."""
    path = BAD_INPUTS / name
    for number, line in enumerate(path.read_bytes().decode("latin-1").splitlines(), start=1):
        if line_has in line and not line.lstrip().startswith("#"):
            return f"{path}:{number}:{line.index(column_at, line.index(line_has)) + 1}"
    raise AssertionError(f"{line_has!r} not in {path}")


def bad(name: str) -> str:
    return str(BAD_INPUTS / name)


CONFIG_CASES = {
    "missing experiment": (
        ["no_such_experiment"],
        "error: <command line>: unknown experiment 'no_such_experiment' (available: "),
    "missing experiment file": (
        ["no/such/file.yaml"],
        "error: <command line>: experiment file 'no/such/file.yaml' not found"),
    "empty YAML": (
        [bad("empty.yaml")],
        f"error: {bad('empty.yaml')}: the experiment file is empty (it needs a defaults list and train_tasks)"),
    "YAML syntax error": (
        [bad("syntax_error.yaml")],
        f"error: {where('syntax_error.yaml', 'global_seed', ':')}: invalid YAML: expected ',' or ']', but got ':' "
        f"(while parsing a flow sequence started at {where('syntax_error.yaml', 'train_tasks', '[').split(':', 1)[1]})"),
    "non-UTF-8 bytes": (
        [bad("non_utf8.yaml")],
        f"error: {where('non_utf8.yaml', 'expr_name', chr(0xE9))}: not valid UTF-8 text (byte 0xe9); save the file as UTF-8"),
    "wrong type in an override": (
        ["example_mtl_train", "trainer.max_epochs=abc"],
        "error: <command line: trainer.max_epochs=abc>: trainer.max_epochs: expected int, got 'abc' (str)"),
    "wrong type in a file": (
        [bad("wrong_type.yaml")],
        f"error: {where('wrong_type.yaml', 'hidden_dims', chr(34))}: backbone.hidden_dims: expected list[int], "
        f"got '256, 100' (str)"),
    "misspelt key": (
        [bad("misspelt_key.yaml")],
        f"error: {where('misspelt_key.yaml', 'max_epoch:', 'max_epoch')}: unknown field 'max_epoch' for "
        f"mtlcli.engine.Trainer (did you mean 'max_epochs'?)"),
    "unknown group option": (
        ["example_mtl_train", "backbone=mlpp"],
        "error: <command line>: unknown option 'mlpp' for config group 'backbone'; did you mean 'mlp'? "
        "(available: "),
    "override without =": (
        ["example_mtl_train", "trainer.max_epochs"],
        "error: <command line>: bad override 'trainer.max_epochs': expected key=value"),
    "override without key": (
        ["example_mtl_train", "=3"],
        "error: <command line>: bad override '=3': missing the key before '='"),
    "override with an unclosed list": (
        ["example_mtl_train", "trainer.max_epochs=[1,2"],
        "error: <command line>: bad override 'trainer.max_epochs=[1,2': unbalanced '['"),
    "class_split with overlapping classes": (
        [bad("overlapping_class_split.yaml")],
        f"error: {where('overlapping_class_split.yaml', 'class_split', '[2, 3]')}: class_split.2: class 3 appears "
        f"in tasks 1 and 2; tasks must not share classes"),
    "class_split with a class the dataset does not have": (
        [bad("unknown_class.yaml")],
        f"error: {where('unknown_class.yaml', 'class_split', '[9, 10]')}: class_split.2: task 2 names class 10, "
        f"which Digits does not have (classes 0..9)"),
    "eval_tasks naming a task that does not exist": (
        [bad("unknown_eval_task.yaml")],
        f"error: {where('unknown_eval_task.yaml', 'eval_tasks', '[')}: eval_tasks names task(s) [7] that the "
        f"dataset does not have (its tasks: [1, 2, 3, 4, 5])"),
    "missing dataset root": (
        [bad("missing_dataset_root.yaml")],
        "error: MNIST files not found (no/such/MNIST does not exist): expected train-images-idx3-ubyte"),
}


@pytest.mark.parametrize("args, message", list(CONFIG_CASES.values()), ids=list(CONFIG_CASES))
def test_a_config_mistake_is_one_line_naming_it(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no ./configs here; a run that wrongly started would write under tmp_path
    result = in_process(["train", *args], capsys)
    line = one_error_line(result)
    assert result.code == 1
    assert line.startswith(message), f"\n{line}\n{message}"
    assert not (tmp_path / "outputs").exists(), "nothing is written for a config that fails its checks"


class NotWeights:
    """Any class: pickling an instance of it puts code references into a checkpoint."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_torch_thread) -> dict[str, Path]:
    """A finished run and the checkpoint of a run with a narrower backbone."""
    root = tmp_path_factory.mktemp("runs")
    train_command("example_mtl_train", ["trainer.max_epochs=1", f"output_dir={root / 'run'}"], quiet=True)
    train_command("example_mtl_train", ["trainer.max_epochs=1", "backbone.hidden_dims=[32]",
                                        f"output_dir={root / 'other'}"], quiet=True)
    return {"run": root / "run", "other": root / "other"}


def damaged_checkpoint(kind: str, folder: Path, runs: dict[str, Path]) -> Path:
    good = runs["run"] / "checkpoints" / "last.pt"
    path = folder / f"{kind}.pt"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_a_checkpoint":
        shutil.copy(BAD_INPUTS / "not_a_checkpoint.pt", path)
    elif kind == "pickled_code":
        torch.save({"format_version": 1, "model": {}, "note": NotWeights()}, path)
    elif kind == "not_mtlcli":
        torch.save({"weights": torch.zeros(2)}, path)
    elif kind == "other_config":
        shutil.copy(runs["other"] / "checkpoints" / "last.pt", path)
    return path


CHECKPOINT_CASES = {
    "truncated": "is corrupt or truncated (not a complete PyTorch checkpoint archive)",
    "empty": "is corrupt or truncated (not a complete PyTorch checkpoint archive)",
    "not_a_checkpoint": "is corrupt or truncated (not a complete PyTorch checkpoint archive)",
    "pickled_code": f"holds pickled Python objects that safe loading refuses (it refers to {__name__}.NotWeights); "
                    f"mtlcli checkpoints hold only tensors and plain values",
    "not_mtlcli": "is not an mtlcli checkpoint (format version 1)",
    # one hidden layer instead of two: the config's model has layers the checkpoint lacks
    "other_config": "does not fit the run's config: the config's model has backbone.layers.7.weight, "
                    "backbone.layers.7.bias, backbone.layers.8.weight and 4 more that the checkpoint lacks "
                    "(another backbone or algorithm?)",
}


@pytest.mark.parametrize("kind, message", list(CHECKPOINT_CASES.items()), ids=list(CHECKPOINT_CASES))
def test_a_bad_checkpoint_given_to_evaluate_is_one_line(kind, message, runs, tmp_path, capsys):
    checkpoint = damaged_checkpoint(kind, tmp_path, runs)
    result = in_process(["evaluate", runs["run"], "--checkpoint", checkpoint], capsys)
    line = one_error_line(result)
    assert result.code == 1
    assert line in (f"error: checkpoint {checkpoint} {message}", f"error: {checkpoint} {message}")


@pytest.mark.parametrize("kind", ["truncated", "other_config"])
def test_resuming_from_a_bad_checkpoint_is_one_line_and_touches_nothing(kind, runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["run"], run)
    (run / "metrics" / "test.csv").unlink()  # an unfinished run: resume would go on
    checkpoint = run / "checkpoints" / "last.pt"
    damaged_checkpoint(kind, tmp_path, runs).replace(checkpoint)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    line = one_error_line(in_process(["train", "--resume", run], capsys))
    assert line == f"error: checkpoint {checkpoint} {CHECKPOINT_CASES[kind]}"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_an_unknown_command_is_a_usage_error(capsys):
    result = in_process(["trian"], capsys)
    assert result.code == 2
    assert "No such command 'trian'" in result.stderr and "Traceback" not in result.output


def test_the_console_prints_one_line_and_debug_adds_the_traceback(tmp_path):
    """What a user's terminal shows: the real interpreter, the real exit code."""
    plain = in_subprocess(["train", "example_mtl_train", "trainer.max_epochs=abc"], cwd=tmp_path)
    assert plain.code == 1 and plain.stdout == ""
    assert plain.stderr == ("error: <command line: trainer.max_epochs=abc>: trainer.max_epochs: expected int, "
                            "got 'abc' (str)\n")
    debug = in_subprocess(["--debug", "train", "no_such_experiment"], cwd=tmp_path)
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "unknown experiment 'no_such_experiment'" in debug.stderr.splitlines()[-1]
