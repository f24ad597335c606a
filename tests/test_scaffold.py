"""``mtlcli new-algorithm``: generated configs, --update merging, and scaffolding a new algorithm."""

from __future__ import annotations

import enum
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mtlcli.algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlcli.errors import MtlcliError, UsageError
from mtlcli.scaffold import (
    default_values,
    new_algorithm,
    render_config,
    resolve_algorithm,
    default_config_name,
    snake_case,
    update_config,
)
from mtlcli.signature import signature_of
from mtlcli.yamlio import load_yaml_text, to_plain
from mtlcli.yamlvalues import Unwritable, plain_data, yaml_value

yaml = pytest.importorskip("yaml")  # PyYAML: what plain YAML readers (and OmegaConf) use

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def load_both(text: str):
    """The document as mtlcli reads it (ruamel, YAML 1.1 rules) and as PyYAML reads it."""
    return to_plain(load_yaml_text(text, "<test>")), yaml.safe_load(text)


def same(a, b) -> bool:
    """Equal, and of the same types all the way down (1.0 is not 1, '1e-3' is not 0.001)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(k1, k2) and same(a[k1], b[k2]) for k1, k2 in zip(a, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


# -- values ---------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_value_loads_back_to_itself_in_both_readers(value):
    text = f"key: {yaml_value(value)}\n"
    expected = plain_data(value)
    for loaded in load_both(text):
        assert same(loaded["key"], expected), text


@pytest.mark.parametrize(
    "value, text",
    [
        ("a: b", '"a: b"'), ("#not a comment", '"#not a comment"'), ("it's \"quoted\"", "\"it's \\\"quoted\\\"\""),
        ("  leading", '"  leading"'), ("yes", '"yes"'), ("null", '"null"'), ("1e-3", '"1e-3"'), ("", '""'),
        ("data/MNIST", "data/MNIST"), ("relu", "relu"), (None, "null"), (True, "true"), (1e-3, "0.001"),
        (1e-8, "1.0e-08"), (1e20, "1.0e+20"), (float("inf"), ".inf"), (-0.0, "-0.0"), ((0.9, 0.999), "[0.9, 0.999]"),
        ({1: [0, 1], 2: [2, 3]}, "{1: [0, 1], 2: [2, 3]}"), ({}, "{}"), ([], "[]"),
    ],
)
def test_tricky_values(value, text):
    assert yaml_value(value) == text
    for loaded in load_both(f"key: {text}\n"):
        assert same(loaded["key"], plain_data(value))


def test_small_floats_stay_floats_for_yaml_1_1_readers():
    # PyYAML (YAML 1.1) reads 1e-08 as a string; the writer must add the dot
    assert yaml.safe_load("x: 1e-08")["x"] == "1e-08"
    assert load_both(f"x: {yaml_value(1e-8)}")[1]["x"] == 1e-8


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def test_enums_by_value_and_unwritable_objects():
    assert yaml_value(Colour.BLUE) == "blue"
    with pytest.raises(Unwritable, match=r"a function \(builtins.len\)"):
        yaml_value(len)
    with pytest.raises(Unwritable, match="a builtins.object object"):
        yaml_value([1, object()])


# -- configs from signatures ---------------------------------------------------------------------

class Sample:
    """A sample component.

    Args:
        size: how big.
        rate: how fast.
        fn: a callable default YAML cannot hold.
        colour: an enum default.
        text: a string that needs quotes.
    """

    def __init__(self, first: int, /, size: int, rate: float = 1e-3, fn=len, colour: Colour = Colour.RED,
                 text: str = "a: b # c", *more, flag: bool = False):
        pass


def test_rendered_config_layout_and_values():
    sig = signature_of(Sample, target="tests.Sample")
    text = render_config(sig, kind=None)
    assert text.splitlines()[2] == "_target_: tests.Sample"
    assert "# int, required: how big.\nsize: ???\n" in text
    assert "# float: how fast.\nrate: 0.001\n" in text
    assert "# the default is a function (builtins.len), which YAML cannot hold; the class default\n" \
           "# applies\n# fn: <default>\n" in text
    assert "colour: red\n" in text
    assert 'text: "a: b # c"\n' in text
    assert "# int, required\n# first is positional-only: a YAML mapping cannot set it by name; pass it in _args_\n" \
           "# first: <not settable by name>\n" in text
    assert "# more is *args" in text
    for loaded in load_both(text):
        assert loaded == {"_target_": "tests.Sample", **default_values(sig)}
        assert loaded["size"] == "???" and loaded["colour"] == "red" and "fn" not in loaded


def test_partial_kinds_get_partial_true():
    import torch

    text = render_config(signature_of(torch.optim.SGD, kind="optimizer", target="torch.optim.SGD"), kind="optimizer")
    assert text.splitlines()[3:5] == ["_target_: torch.optim.SGD", "_partial_: true"]
    assert "params" not in load_both(text)[0]


def test_joint_learning_stdout_equals_the_shipped_file():
    result = subprocess.run([sys.executable, "-m", "mtlcli", "new-algorithm", "mtlcli.algorithms.JointLearning",
                             "--stdout"], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout == (REPO / "configs" / "mtl_algorithm" / "joint_learning.yaml").read_text()


def test_every_shipped_algorithm_config_is_what_new_algorithm_generates():
    from mtlcli.algorithms import BUILTIN_ALGORITHMS
    from mtlcli.resources import shipped_dir

    folder = shipped_dir("configs") / "mtl_algorithm"
    stale = []
    for name in BUILTIN_ALGORITHMS:
        path = folder / f"{default_config_name(getattr(mtlcli.algorithms, name))}.yaml"
        expected = render_config(resolve_algorithm(f"mtlcli.algorithms.{name}"))
        if not path.is_file() or path.read_text() != expected:
            stale.append(path.name)
    for path in sorted(folder.glob("*.yaml")):
        target = to_plain(load_yaml_text(path.read_text(), str(path)))["_target_"]
        if path.read_text() != render_config(resolve_algorithm(target)):
            stale.append(path.name)
    assert sorted(set(stale)) == [], "regenerate them: mtlcli new-algorithm --all --force"


def test_config_names_use_a_class_own_config_name_else_snake_case():
    from mtlcli.algorithms import MoCo, UPGrad

    class MyMoCo(MoCo):
        pass

    assert default_config_name(MoCo) == "moco"
    assert default_config_name(UPGrad) == "upgrad"
    assert default_config_name(MyMoCo) == "my_mo_co"  # a subclass does not take its parent's name
    assert resolve_algorithm("moco").obj is MoCo


def test_snake_case_names():
    assert [snake_case(n) for n in ["JointLearning", "PCGrad", "UW", "DBMTL", "GradNorm", "ResNet18", "NashMTL"]] == \
           ["joint_learning", "pcgrad", "uw", "dbmtl", "grad_norm", "res_net18", "nash_mtl"]


# -- --update ----------------------------------------------------------------------------------------

def _tunable() -> str:
    name = "mtlcli_test_update_algorithms"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / "update_algorithms.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return f"{name}.Tunable"


def test_update_keeps_values_comments_and_order_and_adds_new_fields(tmp_path):
    target = _tunable()
    path = tmp_path / "mtl_algorithm" / "tunable.yaml"
    path.parent.mkdir()
    path.write_text((FIXTURES / "update_before.yaml").read_text().replace("TARGET", target))
    result = update_config(path, resolve_algorithm(target))
    assert result.text == (FIXTURES / "update_after.yaml").read_text().replace("TARGET", target)
    assert result.added == ["beta", "gamma"]
    assert result.stale == ["old_knob"]


def test_update_inserts_before_the_first_field_and_after_a_block_value(tmp_path):
    target = _tunable()
    path = tmp_path / "tunable.yaml"
    path.write_text(f"_target_: {target}\ngamma:\n  - 5\n  - 6\n# a closing note")  # no final newline
    result = update_config(path, resolve_algorithm(target))
    assert result.text == (
        f"_target_: {target}\n"
        "\n# float: first knob.\nalpha: 0.5\n"
        "\n# int: a knob added later.\nbeta: 3\n"
        "gamma:\n  - 5\n  - 6\n"
        "\n# str: how to combine.\nmode: sum\n"
        "# a closing note\n"
    )
    assert result.added == ["alpha", "beta", "mode"] and result.stale == []


def test_update_through_the_command_is_idempotent_and_reports_stale_keys(tmp_path, monkeypatch):
    target = _tunable()
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "configs" / "mtl_algorithm" / "tunable.yaml"
    path.parent.mkdir(parents=True)
    path.write_text((FIXTURES / "update_before.yaml").read_text().replace("TARGET", target))
    said, warned = [], []
    new_algorithm(target, update=True, echo=said.append, warn=warned.append)
    assert path.read_text() == (FIXTURES / "update_after.yaml").read_text().replace("TARGET", target)
    assert said == ["updated configs/mtl_algorithm/tunable.yaml: added beta, gamma"]
    assert len(warned) == 1 and "old_knob" in warned[0]
    new_algorithm(target, update=True, echo=said.append, warn=warned.append)
    assert said[-1] == "configs/mtl_algorithm/tunable.yaml is up to date"
    assert path.read_text() == (FIXTURES / "update_after.yaml").read_text().replace("TARGET", target)


def test_update_refuses_a_file_for_another_class(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("_target_: mtlcli.algorithms.UW\n")
    with pytest.raises(MtlcliError, match="its _target_ is 'mtlcli.algorithms.UW'"):
        update_config(path, resolve_algorithm(_tunable()))


# -- the command ------------------------------------------------------------------------------------

def test_never_overwrites_without_force(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said = []
    new_algorithm("UW", echo=said.append)
    path = tmp_path / "configs" / "mtl_algorithm" / "uw.yaml"
    assert said == ["wrote configs/mtl_algorithm/uw.yaml"]
    path.write_text("_target_: mtlcli.algorithms.UW\ninit_log_variance: 0.0\n")
    with pytest.raises(MtlcliError, match="already exists"):
        new_algorithm("UW", echo=said.append)
    assert path.read_text().endswith("init_log_variance: 0.0\n")
    new_algorithm("UW", force=True, echo=said.append)
    assert "init_log_variance: -0.5" in path.read_text()
    with pytest.raises(UsageError, match="--force and --update"):
        new_algorithm("UW", force=True, update=True)


def test_all_and_name_and_config_dir(tmp_path, monkeypatch):
    from mtlcli.algorithms import BUILTIN_ALGORITHMS

    monkeypatch.chdir(tmp_path)
    new_algorithm(None, all_builtins=True, config_dir=Path("mine"), echo=lambda _: None)
    written = sorted(p.name for p in (tmp_path / "mine" / "mtl_algorithm").iterdir())
    assert written == sorted(f"{default_config_name(getattr(mtlcli.algorithms, n))}.yaml" for n in BUILTIN_ALGORITHMS)
    new_algorithm("mtlcli.algorithms.DWA", name="dwa_hot", echo=lambda _: None)
    assert (tmp_path / "configs" / "mtl_algorithm" / "dwa_hot.yaml").is_file()


def test_bad_targets():
    with pytest.raises(UsageError, match="did you mean 'JointLearning'"):
        resolve_algorithm("JointLerning")
    with pytest.raises(MtlcliError, match="not an MTLAlgorithm subclass"):
        resolve_algorithm("mtlcli.backbones.MLP")
    with pytest.raises(MtlcliError, match="did you mean 'mtlcli.algorithms.DWA'"):
        resolve_algorithm("mtlcli.algorithms.DAW")


# -- --create ------------------------------------------------------------------------------------------

def test_scaffolded_algorithm_imports_passes_its_test_and_validates(tmp_path):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cli = [sys.executable, "-m", "mtlcli"]
    made = subprocess.run([*cli, "new-algorithm", "--create", "mypkg/algos/my_algo.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines() == [
        "wrote mypkg/__init__.py", "wrote mypkg/algos/__init__.py", "wrote mypkg/algos/my_algo.py",
        "wrote configs/mtl_algorithm/my_algo.yaml", "wrote tests/test_my_algo.py"]
    config = (tmp_path / "configs" / "mtl_algorithm" / "my_algo.yaml").read_text()
    assert "_target_: mypkg.algos.my_algo.MyAlgo" in config and "default_weight: 1.0" in config
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "4 passed" in tested.stdout
    checked = subprocess.run([*cli, "validate"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    again = subprocess.run([*cli, "new-algorithm", "--create", "mypkg/algos/my_algo.py"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 1 and "already exist" in again.stderr


def test_create_refuses_bad_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"\.py file"):
        new_algorithm(None, create=Path("mypkg/algo.txt"))
    with pytest.raises(UsageError, match="Python name"):
        new_algorithm(None, create=Path("my-pkg/algo.py"))
    with pytest.raises(UsageError, match="already an installed module"):
        new_algorithm(None, create=Path("torch/my_algo.py"))
    assert not any(tmp_path.iterdir())


def test_a_config_that_replaces_a_shipped_option_of_another_algorithm_is_warned_about(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    warnings: list[str] = []
    new_algorithm(None, create=Path("algos/pcgrad.py"), echo=lambda _: None, warn=warnings.append)
    assert len(warnings) == 1 and "takes the place of the shipped 'pcgrad'" in warnings[0]
    warnings.clear()  # the same built-in's config in your folder replaces nothing
    new_algorithm("UPGrad", echo=lambda _: None, warn=warnings.append)
    assert warnings == []
