"""``mtlcli evaluate RUN_DIR``: the saved model, rebuilt from the run's config, gives the
run's own test metrics; evaluations never replace each other; a checkpoint that does not
fit the config is named precisely."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import torch

from mtlcli.engine.outputs import read_csv
from mtlcli.experiment import describe_mismatch, train_command
from run_cli import in_process, one_error_line
from run_cli import one_torch_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUNS = {  # name -> overrides of example_mtl_train (each run is a few seconds at most)
    "two_epochs": ["trainer.max_epochs=2"],
    "one_epoch": ["trainer.max_epochs=1"],
    "narrow_backbone": ["trainer.max_epochs=1", "backbone.output_dim=32"],
    "three_tasks": ["trainer.max_epochs=1", "train_tasks=3", "eval_tasks=3"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_torch_thread) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    for name, overrides in RUNS.items():
        train_command("example_mtl_train", [*overrides, f"output_dir={root / name}"], quiet=True)
    return {name: root / name for name in RUNS}


def eval_files(run: Path) -> list[Path]:
    return sorted((run / "metrics").glob("eval-*.csv"))


def remove_evals(run: Path) -> None:
    for path in eval_files(run):
        path.unlink()


def test_evaluate_reproduces_the_runs_test_metrics_exactly(runs, capsys):
    run = runs["two_epochs"]
    remove_evals(run)
    result = in_process(["evaluate", run], capsys)
    assert result.code == 0, result.output
    [written] = eval_files(run)
    assert written.read_bytes() == (run / "metrics" / "test.csv").read_bytes()
    assert f"written {written}" in result.stdout
    # the table shows the same average accuracy as the saved results
    average = next(row for row in read_csv(written) if row["task"] == "average")
    assert f"{float(average['accuracy']):.4f}" in result.stdout.splitlines()[-2]


def test_evaluations_in_the_same_second_get_their_own_files(runs, capsys, monkeypatch):
    import mtlcli.experiment

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2030, 1, 2, 3, 4, 5)

    monkeypatch.setattr(mtlcli.experiment, "datetime", FrozenClock)
    run = runs["one_epoch"]
    remove_evals(run)
    assert in_process(["evaluate", run], capsys).code == 0
    first = run / "metrics" / "eval-2030-01-02_03-04-05.csv"
    first_text = first.read_bytes()
    assert in_process(["evaluate", run, "--eval-tasks", "2"], capsys).code == 0
    assert set(eval_files(run)) == {first, run / "metrics" / "eval-2030-01-02_03-04-05-1.csv"}
    assert first.read_bytes() == first_text
    assert not list((run / "metrics").glob(".*"))  # no temporary file left behind


def test_eval_tasks_subset_gives_those_tasks_rows(runs, capsys):
    run = runs["two_epochs"]
    remove_evals(run)
    assert in_process(["evaluate", run, "--eval-tasks", "4", "--eval-tasks", "2"], capsys).code == 0
    [written] = eval_files(run)
    rows = {row["task"]: row for row in read_csv(written)}
    full = {row["task"]: row for row in read_csv(run / "metrics" / "test.csv")}
    assert sorted(rows) == ["2", "4", "average"]
    for task in ("2", "4"):
        assert rows[task]["accuracy"] == full[task]["accuracy"]
        assert rows[task]["num_samples"] == full[task]["num_samples"]
        # the same rows in other batches: equal up to the order of a float sum
        assert float(rows[task]["loss"]) == pytest.approx(float(full[task]["loss"]), rel=1e-6)
    assert float(rows["average"]["accuracy"]) == pytest.approx(
        (float(full["2"]["accuracy"]) + float(full["4"]["accuracy"])) / 2)


def test_checkpoint_option_evaluates_another_checkpoint_of_the_same_config(runs, capsys):
    # the one-epoch run has the same model as the two-epoch one: its checkpoint fits
    run, other = runs["two_epochs"], runs["one_epoch"]
    remove_evals(run)
    result = in_process(["evaluate", run, "--checkpoint", other / "checkpoints" / "last.pt"], capsys)
    assert result.code == 0, result.output
    [written] = eval_files(run)
    assert written.read_bytes() == (other / "metrics" / "test.csv").read_bytes()


@pytest.mark.parametrize("other, message", [
    ("narrow_backbone", "backbone.layers.7.weight is 32x100 in the checkpoint but 64x100 in the config's model "
                        "(another backbone size?)"),
    ("three_tasks", "the checkpoint has heads for tasks [1, 2, 3], the config trains tasks [1, 2, 3, 4, 5]"),
])
def test_a_checkpoint_of_another_config_is_named_as_such(runs, capsys, other, message):
    run = runs["two_epochs"]
    before = eval_files(run)
    checkpoint = runs[other] / "checkpoints" / "last.pt"
    line = one_error_line(in_process(["evaluate", run, "--checkpoint", checkpoint], capsys))
    assert line == f"error: checkpoint {checkpoint} does not fit the run's config: {message}"
    assert eval_files(run) == before


def test_eval_tasks_must_be_trained_tasks_of_the_run(runs, capsys):
    line = one_error_line(in_process(["evaluate", runs["three_tasks"], "--eval-tasks", "5"], capsys))
    assert "--eval-tasks [5] were not trained in this run (trained: [1, 2, 3])" in line
    line = one_error_line(in_process(["evaluate", runs["three_tasks"], "--eval-tasks", "9"], capsys))
    assert "--eval-tasks names task(s) [9] that the dataset does not have (its tasks: [1, 2, 3, 4, 5])" in line


def test_evaluate_needs_a_run_directory(tmp_path, capsys):
    line = one_error_line(in_process(["evaluate", tmp_path / "missing"], capsys))
    assert line == f"error: run directory not found: {tmp_path / 'missing'}"


def _state(classes: dict[int, int], features: int = 4, hidden: int = 3) -> dict:
    state = {"backbone.weight": torch.zeros(features, hidden)}
    for task, k in classes.items():
        state[f"heads.heads.{task}.weight"] = torch.zeros(k, features)
        state[f"heads.heads.{task}.bias"] = torch.zeros(k)
    return state


def test_describe_mismatch_names_class_counts_widths_and_extra_parameters():
    config = _state({1: 2, 2: 3})
    assert describe_mismatch(config, _state({1: 2, 2: 3})) == ""
    assert describe_mismatch(config, _state({1: 2, 2: 4})) == "task 2 has 4 classes in the checkpoint but 3 in the config"
    assert describe_mismatch(config, _state({1: 2, 3: 3})) == (
        "the checkpoint has heads for tasks [1, 3], the config trains tasks [1, 2]")
    assert describe_mismatch(config, _state({1: 2, 2: 3}, features=8)) == (
        "backbone.weight is 8x3 in the checkpoint but 4x3 in the config's model (another backbone size?)")
    extra = {**_state({1: 2, 2: 3}), "log_variance": torch.zeros(2)}
    assert describe_mismatch(config, extra) == (
        "the checkpoint has log_variance that the config's model lacks (another backbone or algorithm?)")
