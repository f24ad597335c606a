"""The README's algorithm table, the classes and the shipped configs agree, and every
algorithm trains the default experiment."""

import re
from pathlib import Path

import pytest
import torch

import mtlcli.algorithms
from mtlcli.algorithms import BUILTIN_ALGORITHMS
from mtlcli.algorithms.gradient_method import GradientMethod
from mtlcli.resources import shipped_dir
from mtlcli.signature import signature_of
from mtlcli.yamlio import load_yaml, to_plain

ROOT = Path(__file__).resolve().parent.parent


def _readme_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Algorithms\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `") and "mtl_algorithm=" not in line]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


ROWS = _readme_rows()


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_table_lists_every_builtin_algorithm_once_and_nothing_else():
    classes = [_code(row[1])[0] for row in ROWS]
    assert sorted(classes) == sorted(BUILTIN_ALGORITHMS)
    assert len(set(classes)) == len(classes)


def test_every_listed_name_has_its_config_and_every_config_is_listed():
    names = {_code(row[0])[0]: _code(row[1])[0] for row in ROWS}
    folder = shipped_dir("configs") / "mtl_algorithm"
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted(names)
    for name, cls in names.items():
        assert to_plain(load_yaml(folder / f"{name}.yaml"))["_target_"] == f"mtlcli.algorithms.{cls}"


@pytest.mark.parametrize("row", ROWS, ids=[_code(r[1])[0] for r in ROWS])
def test_hyperparameters_and_kind_match_the_class(row):
    cls = getattr(mtlcli.algorithms, _code(row[1])[0])
    fields = [f.name for f in signature_of(cls, kind="mtl_algorithm").fields]
    assert _code(row[4]) == fields
    assert ("gradient" in row[3]) == issubclass(cls, GradientMethod)


@pytest.fixture(scope="module")
def digits_run_parts():
    """The default experiment's data, built once (one torch thread: the suite runs on 2 cores)."""
    from mtlcli.compose import compose
    from mtlcli.experiment import build_run, run_data

    composed = compose("example_mtl_train", ["trainer.max_epochs=1"])
    built = build_run(composed.config, composed)
    return composed, run_data(built)


@pytest.mark.parametrize("row", ROWS, ids=[_code(r[0])[0] for r in ROWS])
def test_every_algorithm_trains_one_epoch_of_the_default_experiment(row, digits_run_parts, tmp_path):
    from mtlcli.compose import compose
    from mtlcli.engine.progress import Progress
    from mtlcli.experiment import build_run

    name = _code(row[0])[0]
    composed = compose("example_mtl_train", [f"mtl_algorithm={name}", "trainer.max_epochs=1"])
    built = build_run(composed.config, composed)
    _, data = digits_run_parts
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = built.trainer.fit(built.model, built.optimizer, built.scheduler, data, tmp_path, Progress("quiet"))
    finally:
        torch.set_num_threads(threads)
    assert [r.task_id for r in results] == [1, 2, 3, 4, 5]
    for r in results:
        assert torch.isfinite(torch.tensor(r.loss)), (name, r)
        assert r.accuracy > 0.5, (name, r)  # each task is a pair of digits: chance is 0.5
