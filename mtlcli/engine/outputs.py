"""What a run leaves on disk: per-epoch and test metrics as CSV (ours and CLArena's
``results/`` files), written whole and atomically so a file is complete or absent."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mtlcli.engine.metrics import TaskResult, average
from mtlcli.yamlio import atomic_write_text

EPOCH_COLUMNS = ["epoch", "task", "loss", "accuracy", "num_samples"]
TEST_COLUMNS = ["task", "loss", "accuracy", "num_samples"]


def csv_text(columns: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    atomic_write_text(path, csv_text(columns, rows), overwrite=True)


def epoch_rows(epoch: int, results: list[TaskResult]) -> list[dict]:
    return [
        {"epoch": epoch, "task": r.task_id, "loss": r.loss, "accuracy": r.accuracy, "num_samples": r.num_samples}
        for r in results
    ]


def test_rows(results: list[TaskResult]) -> list[dict]:
    """One row per task, then their average (each task weighted once)."""
    rows = [{"task": r.task_id, "loss": r.loss, "accuracy": r.accuracy, "num_samples": r.num_samples} for r in results]
    mean = average(results)
    rows.append({"task": "average", "loss": mean.loss, "accuracy": mean.accuracy, "num_samples": mean.num_samples})
    return rows


def write_test_results(output_dir: Path, results: list[TaskResult], metrics_name: str = "test.csv") -> None:
    """``metrics/<metrics_name>`` plus CLArena's ``results/acc.csv`` and ``results/loss_cls.csv``."""
    output_dir = Path(output_dir)
    write_csv(output_dir / "metrics" / metrics_name, TEST_COLUMNS, test_rows(results))
    if metrics_name != "test.csv":
        return
    mean = average(results)
    acc = {"average_accuracy": mean.accuracy, **{f"test_on_task_{r.task_id}": r.accuracy for r in results}}
    loss = {"average_classification_loss": mean.loss, **{f"test_on_task_{r.task_id}": r.loss for r in results}}
    write_csv(output_dir / "results" / "acc.csv", list(acc), [acc])
    write_csv(output_dir / "results" / "loss_cls.csv", list(loss), [loss])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def summary_table(results: list[TaskResult], title: str = "test") -> str:
    """A short fixed-width table for the terminal."""
    mean = average(results)
    lines = [f"{title:<10} {'accuracy':>9} {'loss':>9} {'samples':>8}"]
    for r in results:
        lines.append(f"task {r.task_id:<5} {r.accuracy:>9.4f} {r.loss:>9.4f} {r.num_samples:>8d}")
    lines.append(f"{'average':<10} {mean.accuracy:>9.4f} {mean.loss:>9.4f} {mean.num_samples:>8d}")
    return "\n".join(lines)
