"""``mtlcli train`` end to end: what a run leaves on disk, that the same seed gives the same
files, that a run never writes into another run, and that a full disk or an unwritable
folder is one clear line with the previous checkpoint intact."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

import mtlcli.engine.checkpoint
from mtlcli.engine.outputs import read_csv
from mtlcli.yamlio import load_yaml, to_plain
from run_cli import in_process, in_subprocess, one_error_line
from run_cli import one_torch_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METRIC_FILES = ["metrics/train.csv", "metrics/val.csv", "metrics/test.csv", "results/acc.csv", "results/loss_cls.csv"]


def train_args(output_dir: Path, *overrides: str, epochs: int = 2) -> list:
    return ["train", "example_mtl_train", "-q", f"trainer.max_epochs={epochs}", f"output_dir={output_dir}", *overrides]


def files_of(run: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_run_writes_every_output_and_the_same_seed_gives_the_same_files(tmp_path, capsys):
    console = in_subprocess(train_args(tmp_path / "console"), cwd=tmp_path)
    assert console.code == 0, console.output
    assert "average" in console.stdout and f"results in {tmp_path / 'console'}" in console.stdout
    again = in_process(train_args(tmp_path / "again"), capsys)
    assert again.code == 0, again.output
    for name in METRIC_FILES:
        assert (tmp_path / "console" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name

    run = tmp_path / "console"
    config = to_plain(load_yaml(run / "config.yaml"))
    assert config["output_dir"] == str(run) and config["trainer"]["max_epochs"] == 2
    assert [(r["epoch"], r["task"]) for r in read_csv(run / "metrics" / "train.csv")] == [
        (str(e), str(t)) for e in (1, 2) for t in range(1, 6)]
    test = read_csv(run / "metrics" / "test.csv")
    assert [r["task"] for r in test] == ["1", "2", "3", "4", "5", "average"]
    [acc] = read_csv(run / "results" / "acc.csv")
    assert list(acc) == ["average_accuracy"] + [f"test_on_task_{t}" for t in range(1, 6)]
    assert acc["average_accuracy"] == test[-1]["accuracy"]
    [loss] = read_csv(run / "results" / "loss_cls.csv")
    assert list(loss) == ["average_classification_loss"] + [f"test_on_task_{t}" for t in range(1, 6)]
    assert [loss[f"test_on_task_{t}"] for t in range(1, 6)] == [r["loss"] for r in test[:5]]
    checkpoint = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["batch"]) == (2, 0)
    assert not [p for p in run.rglob(".*")], "no temporary files left"


def test_another_seed_gives_other_metrics(tmp_path, capsys):
    assert in_process(train_args(tmp_path / "a", epochs=1), capsys).code == 0
    assert in_process(train_args(tmp_path / "b", "global_seed=2", epochs=1), capsys).code == 0
    a, b = (read_csv(tmp_path / r / "metrics" / "train.csv") for r in "ab")
    assert [r["loss"] for r in a] != [r["loss"] for r in b]


def test_a_run_never_writes_into_an_existing_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert in_process(train_args(run, epochs=1), capsys).code == 0
    before = files_of(run)
    line = one_error_line(in_process(train_args(run, epochs=1), capsys))
    assert f"output directory {run} already exists and is not empty" in line
    assert f"--resume {run}" in line
    assert files_of(run) == before


def test_an_output_folder_that_cannot_be_created_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = one_error_line(in_process(train_args(blocker / "run"), capsys))
    assert line == f"error: cannot create output directory {blocker / 'run'}: Not a directory"


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint_and_resume_finishes_the_run(
        tmp_path, capsys, monkeypatch):
    real_save = torch.save
    calls = []

    def save_until_disk_full(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # epoch 2's checkpoint: half a file, then the disk is full
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(mtlcli.engine.checkpoint.torch, "save", save_until_disk_full)
    run = tmp_path / "run"
    line = one_error_line(in_process(train_args(run, epochs=3), capsys))
    checkpoint = run / "checkpoints" / "last.pt"
    assert line == (f"error: cannot write checkpoint {checkpoint}: No space left on device; "
                    f"the previous checkpoint is unchanged")
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["last.pt"]  # the partial file is gone

    monkeypatch.setattr(mtlcli.engine.checkpoint.torch, "save", real_save)
    assert in_process(["train", "--resume", run, "-q"], capsys).code == 0
    assert in_process(train_args(tmp_path / "reference", epochs=3), capsys).code == 0
    for name in METRIC_FILES:
        assert (run / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name


def test_disk_full_while_writing_metrics_leaves_complete_files(tmp_path, capsys, monkeypatch):
    real_replace = os.replace
    val_writes = []

    def replace_until_disk_full(src, dst, *args, **kwargs):
        if Path(dst).name == "val.csv":
            val_writes.append(1)
            if len(val_writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_until_disk_full)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    line = one_error_line(in_process(train_args(run, epochs=3), capsys))
    assert line == "error: cannot write run/metrics/val.csv: No space left on device"
    # epoch 1's validation rows, whole; epoch 2's checkpoint never written
    assert [r["epoch"] for r in read_csv(run / "metrics" / "val.csv")] == ["1"] * 5
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert not [p for p in run.rglob(".*")], "no temporary files left"
