"""Checkpoints and resume: a run killed (SIGKILL) or interrupted (Ctrl-C) mid-epoch and
resumed ends with exactly the metrics of the same run never interrupted; a finished run
cannot be resumed; a non-finite loss stops the run and keeps the last good checkpoint."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from probe_algorithms import PAUSE_AT, PAUSE_DIR, PAUSED_FILE, RELEASE_FILE
from run_cli import command, in_process, one_error_line, subprocess_env, write_configs
from run_cli import one_torch_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS = 3
PAUSE_STEP = 30  # in epoch 2 (an epoch of the embedded digits is 21 steps of 64)
PROBE_CONFIGS = {
    "mtl_algorithm/pausing_dwa.yaml": "_target_: probe_algorithms.PausingDWA\ntemperature: 2.0\n",
    "mtl_algorithm/pausing_rlw.yaml": "_target_: probe_algorithms.PausingRLW\nseed: null\n",
    "mtl_algorithm/nan_task3_step25.yaml": "_target_: probe_algorithms.NonFiniteAtStep\nnan_task: 3\nnan_step: 25\n",
    "mtl_algorithm/nan_task2_step5.yaml": "_target_: probe_algorithms.NonFiniteAtStep\nnan_task: 2\nnan_step: 5\n",
}
OUTPUT_FILES = ["metrics/train.csv", "metrics/val.csv", "metrics/test.csv", "results/acc.csv", "results/loss_cls.csv"]


def train_args(config_dir: Path, algorithm: str, output_dir: Path, epochs: int = EPOCHS, *overrides: str) -> list:
    return ["train", "example_mtl_train", "--config-dir", config_dir, "-q", f"mtl_algorithm={algorithm}",
            f"trainer.max_epochs={epochs}", f"output_dir={output_dir}", *overrides]


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    return write_configs(tmp_path / "configs", PROBE_CONFIGS)


def start_paused_run(tmp_path: Path, args: list) -> subprocess.Popen:
    """Start a training run in a subprocess and return once it waits before step PAUSE_STEP."""
    handshake = tmp_path / "handshake"
    handshake.mkdir()
    process = subprocess.Popen(command(args), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=subprocess_env(**{PAUSE_AT: str(PAUSE_STEP), PAUSE_DIR: str(handshake)}))
    deadline = time.monotonic() + 150
    while not (handshake / PAUSED_FILE).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"the run never reached step {PAUSE_STEP} (exit {process.returncode}):\n{out}\n{err}")
        time.sleep(0.05)
    return process


def assert_same_outputs(run: Path, reference: Path) -> None:
    for name in OUTPUT_FILES:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tmp_path, configs, capsys):
    run = tmp_path / "killed"
    process = start_paused_run(tmp_path, train_args(configs, "pausing_dwa", run))
    # paused inside epoch 2: epoch 1's checkpoint and metrics are on disk
    assert load(run / "checkpoints" / "last.pt")["epoch"] == 1
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (run / "metrics" / "test.csv").exists()
    # every file the killed run left is whole: epoch 1's five task rows and nothing else
    assert (run / "metrics" / "train.csv").read_text().count("\n") == 1 + 5

    resumed = in_process(["train", "--resume", run, "-q"], capsys)
    assert resumed.code == 0, resumed.output
    reference = tmp_path / "uninterrupted"
    done = in_process(train_args(configs, "pausing_dwa", reference), capsys)
    assert done.code == 0, done.output
    assert_same_outputs(run, reference)
    final, expected = load(run / "checkpoints" / "last.pt"), load(reference / "checkpoints" / "last.pt")
    for key, value in expected["model"].items():  # DWA's loss history included
        assert torch.equal(final["model"][key], value), key


def test_ctrl_c_saves_mid_epoch_says_how_to_resume_exits_130_and_resume_ends_identically(tmp_path, configs, capsys):
    run = tmp_path / "interrupted"
    # dropout draws from the global torch generator: its state must be restored mid-epoch too
    process = start_paused_run(tmp_path, train_args(configs, "pausing_rlw", run, EPOCHS, "+backbone.dropout=0.2"))
    process.send_signal(signal.SIGINT)
    (tmp_path / "handshake" / RELEASE_FILE).write_text("")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert f"resume with: mtlcli train --resume {run}" in err
    saved = load(run / "checkpoints" / "last.pt")
    steps_per_epoch = PAUSE_STEP - saved["batch"]
    # saved right after step PAUSE_STEP, in the middle of epoch 2 (index 1)
    assert (saved["epoch"], saved["global_step"]) == (1, PAUSE_STEP)
    assert 0 < saved["batch"] < steps_per_epoch
    assert f"interrupted at epoch 2, step {saved['batch']}" in err

    resumed = in_process(["train", "--resume", run, "-q"], capsys)
    assert resumed.code == 0, resumed.output
    reference = tmp_path / "uninterrupted"
    done = in_process(train_args(configs, "pausing_rlw", reference, EPOCHS, "+backbone.dropout=0.2"), capsys)
    assert done.code == 0, done.output
    assert_same_outputs(run, reference)
    final, expected = load(run / "checkpoints" / "last.pt"), load(reference / "checkpoints" / "last.pt")
    assert final["global_step"] == expected["global_step"] == steps_per_epoch * EPOCHS
    # RLW's weight generator was restored mid-epoch: same state at the end
    assert torch.equal(final["model"]["_extra_state"]["generator_state"],
                       expected["model"]["_extra_state"]["generator_state"])


def test_sigterm_from_a_scheduler_saves_mid_epoch_exits_143_and_resume_ends_identically(tmp_path, configs, capsys):
    run = tmp_path / "terminated"
    process = start_paused_run(tmp_path, train_args(configs, "pausing_dwa", run))
    process.send_signal(signal.SIGTERM)
    (tmp_path / "handshake" / RELEASE_FILE).write_text("")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, out + err
    assert "Traceback" not in out + err
    assert "terminated (SIGTERM) at epoch 2" in err
    assert f"resume with: mtlcli train --resume {run}" in err
    assert load(run / "checkpoints" / "last.pt")["global_step"] == PAUSE_STEP

    resumed = in_process(["train", "--resume", run, "-q"], capsys)
    assert resumed.code == 0, resumed.output
    reference = tmp_path / "uninterrupted"
    assert in_process(train_args(configs, "pausing_dwa", reference), capsys).code == 0
    assert_same_outputs(run, reference)


def test_checkpoint_holds_the_whole_training_state_and_loads_weights_only(tmp_path, configs, capsys):
    run = tmp_path / "run"
    assert in_process(train_args(configs, "pausing_dwa", run, epochs=2), capsys).code == 0
    saved = load(run / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["batch"], saved["max_epochs"]) == (2, 0, 2)
    assert set(saved["rng"]) >= {"torch", "numpy", "python"}
    assert saved["optimizer"]["state"], "Adam's moments are saved"
    assert saved["scheduler"]["last_epoch"] == 2  # ReduceLROnPlateau stepped once per epoch
    # DWA's epoch-level loss history is part of the model state
    assert int(saved["model"]["completed_epochs"]) == 2
    assert [row["epoch"] for row in saved["train_rows"]] == [1] * 5 + [2] * 5
    assert [row["epoch"] for row in saved["val_rows"]] == [1] * 5 + [2] * 5


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, configs, capsys):
    run = tmp_path / "run"
    assert in_process(train_args(configs, "pausing_dwa", run, epochs=1), capsys).code == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = in_process(["train", "--resume", run], capsys)
    line = one_error_line(result)
    assert result.code == 1
    assert f"run {run} already finished (1 epochs); nothing to resume" in line
    assert f"mtlcli evaluate {run}" in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_run_stopped_after_its_last_epoch_but_before_testing_is_resumed_to_its_test(tmp_path, configs, capsys):
    run = tmp_path / "run"
    assert in_process(train_args(configs, "pausing_dwa", run, epochs=1), capsys).code == 0
    finished = {name: (run / name).read_bytes() for name in OUTPUT_FILES}
    for name in ("metrics/test.csv", "results/acc.csv", "results/loss_cls.csv"):
        (run / name).unlink()
    result = in_process(["train", "--resume", run, "-q"], capsys)
    assert result.code == 0, result.output
    assert {name: (run / name).read_bytes() for name in OUTPUT_FILES} == finished


def test_resume_refuses_a_config_whose_optimizer_is_not_the_checkpoints(tmp_path, configs, capsys):
    run = tmp_path / "run"
    assert in_process(train_args(configs, "pausing_dwa", run, epochs=1), capsys).code == 0
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("max_epochs: 1", "max_epochs: 2")
                      .replace("torch.optim.Adam", "torch.optim.SGD"))
    result = in_process(["train", "--resume", run], capsys)
    assert result.code == 1
    assert "was written with optimizer torch.optim.adam.Adam, but the run's config now builds torch.optim.sgd.SGD" \
        in one_error_line(result)


def test_a_checkpoint_write_killed_midway_leaves_no_temporary_file_behind_the_next_one(tmp_path):
    from mtlcli.engine.checkpoint import save_checkpoint

    path = tmp_path / "checkpoints" / "last.pt"
    path.parent.mkdir()
    stale = path.parent / ".last.pt.abc123.tmp"  # what a kill -9 during a write leaves
    stale.write_bytes(b"partial")
    save_checkpoint(path, {"model": {}})
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_resume_needs_a_run_directory_with_a_checkpoint(tmp_path, capsys):
    line = one_error_line(in_process(["train", "--resume", tmp_path / "nowhere"], capsys))
    assert f"run directory not found: {tmp_path / 'nowhere'}" in line
    line = one_error_line(in_process(["train", "--resume", tmp_path], capsys))
    assert f"{tmp_path} is not an mtlcli run directory (no config.yaml)" in line
    (tmp_path / "config.yaml").write_text("train_tasks: 1\n")
    line = one_error_line(in_process(["train", "--resume", tmp_path], capsys))
    assert "has no checkpoint (checkpoints/last.pt)" in line and "nothing to resume" in line


def test_resume_takes_no_experiment_or_overrides(tmp_path, capsys):
    line = one_error_line(in_process(["train", "example_mtl_train", "--resume", tmp_path], capsys))
    assert "--resume continues a run with its saved config" in line


def test_non_finite_loss_names_task_and_step_and_keeps_the_last_good_checkpoint(tmp_path, configs, capsys):
    run = tmp_path / "run"
    result = in_process(train_args(configs, "nan_task3_step25", run), capsys)
    line = one_error_line(result)
    assert result.code == 1
    saved = load(run / "checkpoints" / "last.pt")
    steps_per_epoch = saved["global_step"]  # the checkpoint of epoch 1
    assert saved["epoch"] == 1
    assert f"task 3 has a non-finite loss (nan) at epoch 2, step {25 - steps_per_epoch} (global step 25)" in line
    assert f"the last good checkpoint is kept in {run / 'checkpoints' / 'last.pt'}" in line
    assert not (run / "metrics" / "test.csv").exists()
    # the kept checkpoint is finite
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_non_finite_loss_before_the_first_checkpoint_says_there_is_none(tmp_path, configs, capsys):
    run = tmp_path / "run"
    line = one_error_line(in_process(train_args(configs, "nan_task2_step5", run), capsys))
    assert "task 2 has a non-finite loss (nan) at epoch 1, step 5 (global step 5); no checkpoint was written yet" in line
    assert not (run / "checkpoints" / "last.pt").exists()
