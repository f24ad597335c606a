"""A run folder is used by one process at a time; a lock left by a killed process is stale."""

import subprocess
import sys

import pytest

from mtlcli import runlock
from mtlcli.errors import MtlcliError


def test_a_live_holder_keeps_the_run_and_is_named(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / runlock.LOCK_FILE).write_text(str(holder.pid))
        with pytest.raises(MtlcliError, match=f"in use by process {holder.pid}"):
            runlock.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_whose_process_is_gone_is_taken_over_and_released(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / runlock.LOCK_FILE).write_text(gone.stdout.strip())
    lock = runlock.acquire(tmp_path)
    assert lock.read_text().strip().isdigit() and int(lock.read_text()) != int(gone.stdout)
    runlock.release(lock)
    assert not lock.exists()


def test_resume_of_a_run_in_use_is_refused(tmp_path, capsys):
    from run_cli import in_process, one_error_line

    run = tmp_path / "run"
    assert in_process(["train", "example_mtl_train", "trainer.max_epochs=2", f"output_dir={run}", "-q"], capsys).code == 0
    (run / "metrics" / "test.csv").unlink()  # as if it had not finished: resume would continue it
    assert not (run / runlock.LOCK_FILE).exists()  # the finished run released its lock
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / runlock.LOCK_FILE).write_text(str(holder.pid))
        result = in_process(["train", "--resume", run], capsys)
        assert result.code == 1
        assert f"run {run} is in use by process {holder.pid}" in one_error_line(result)
    finally:
        holder.kill()
        holder.wait()
