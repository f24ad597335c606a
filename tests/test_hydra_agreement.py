"""mtlcli's composition agrees with Hydra's on the shipped configs (and on a layout that
uses the defaults-list features the shipped one does not).

hydra-core is a test-only dependency (the ``test`` extra). Every experiment in the
shipped ``configs/experiment/`` is composed by both, plain and with overrides: one per
other option of each group the experiment selects, and a few key overrides. Results are
compared with types and key order. ``${now:...}`` is pinned to one instant on both sides.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf

from mtlcli.compose import compose, list_group_options
from mtlcli.errors import ConfigError
from mtlcli.resources import shipped_dir

SHIPPED = shipped_dir("configs")
FIXED = datetime(2024, 5, 6, 7, 8, 9)
EXPERIMENTS = sorted(path.stem for path in (SHIPPED / "experiment").glob("*.yaml"))
KEY_OVERRIDES = [
    [],
    ["trainer.max_epochs=1"],
    ["train_tasks=[1,3]", "eval_tasks=[1,3]"],
    ["+foo.bar=1"],
    ["~misc", "output_dir=outputs/fixed"],
    ["++trainer.max_epochs=3", "expr_name=${global_seed}_run"],
]
REFUSED_BY_BOTH = [
    ["~misc"],  # output_dir still refers to misc.timestamp
    ["trainer.max_epoch=1"],
    ["+expr_name=x"],
]


def typed(value):
    """A structure that compares types and key order too (1, 1.0 and True are equal in Python)."""
    if isinstance(value, dict):
        return ("dict", [(typed(key), typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    return (type(value).__name__, value)


def with_hydra(config_dir: Path, experiment: str, overrides: list[str]):
    """Hydra's resolved result, or the exception it raised."""
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        # Hydra registers its own ``now`` at initialisation; pin it to the instant mtlcli gets.
        OmegaConf.register_new_resolver("now", lambda pattern: FIXED.strftime(pattern), replace=True)
        try:
            config = hydra_compose("entrance", overrides=[f"experiment={experiment}", *overrides])
            return OmegaConf.to_container(config, resolve=True)
        except Exception as err:  # compared below: mtlcli must refuse too
            return err


def with_mtlcli(config_dir: Path, experiment: str, overrides: list[str]):
    try:
        return compose(experiment, overrides, [config_dir], now=FIXED).config
    except ConfigError as err:
        return err


def assert_agree(config_dir: Path, experiment: str, overrides: list[str], refused: bool = False) -> None:
    """Both compose to the same config, or (``refused``) both refuse."""
    theirs = with_hydra(config_dir, experiment, overrides)
    ours = with_mtlcli(config_dir, experiment, overrides)
    if refused:
        assert isinstance(theirs, Exception) and isinstance(ours, ConfigError), f"hydra: {theirs!r}\nmtlcli: {ours!r}"
        return
    assert not isinstance(theirs, Exception), f"hydra refused: {theirs!r}"
    assert not isinstance(ours, Exception), f"mtlcli refused: {ours}"
    assert typed(ours) == typed(theirs)


def group_option_overrides(experiment: str) -> list[list[str]]:
    """``group=option`` for every option the experiment does not already select."""
    chosen = compose(experiment, [], [SHIPPED], now=FIXED).choices
    return [
        [f"{group}={option}"]
        for group, current in chosen.items()
        if group != "experiment" and current is not None
        for option in list_group_options(group, [SHIPPED])
        if option != current
    ]


def test_every_shipped_experiment_is_covered():
    assert "example_mtl_train" in EXPERIMENTS


@pytest.fixture(autouse=True)
def _restore_now_resolver():
    yield
    OmegaConf.clear_resolver("now")  # Hydra registers its own again on its next initialisation


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("overrides", KEY_OVERRIDES, ids=lambda o: " ".join(o) or "plain")
def test_shipped_experiment_with_key_overrides(experiment, overrides):
    assert_agree(SHIPPED, experiment, overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("overrides", REFUSED_BY_BOTH, ids=" ".join)
def test_shipped_experiment_overrides_both_refuse(experiment, overrides):
    assert_agree(SHIPPED, experiment, overrides, refused=True)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_shipped_experiment_with_each_group_option(experiment):
    cases = group_option_overrides(experiment)
    assert cases, "the shipped groups have more than one option each"
    for overrides in cases:
        assert_agree(SHIPPED, experiment, overrides)


def test_the_mtl_algorithm_group_options_agree():
    for option in list_group_options("mtl_algorithm", [SHIPPED]):
        assert_agree(SHIPPED, EXPERIMENTS[0], [f"mtl_algorithm={option}"])


# --- a layout using the rest of the defaults-list rules ---------------------------------

LAYOUT = {
    "entrance.yaml": """
        defaults:
          - _self_
          - experiment: null
        top: 1
    """,
    "experiment/main.yaml": """
        # @package _global_
        defaults:
          - /model: big
          - /data: mnist.yaml
          - optional /extras: nothing_here
          - /db@storage: mysql
          - _self_
          - override /data: cifar
        name: main
        model:
          layers: 5
        ref: ${model.width}
        rel:
          x: 3
          y: ${.x}
          z: ${..name}-${model.act.name}
        sizes: [1, 2]
        first: ${sizes[0]}
        escaped: \\${name}
        yaml11: [yes, on, 010, 1e3, 1:30, 2020-01-01, y, n]
    """,
    "experiment/packaged.yaml": """
        defaults:
          - /model: big
          - _self_
        name: packaged
    """,
    "experiment/self_first.yaml": """
        # @package _global_
        defaults:
          - _self_
          - /model: selfish
        model:
          width: 999
    """,
    "model/base.yaml": "width: 1\nlayers: 2\ndropout: 0.1\n",
    "model/big.yaml": """
        defaults:
          - base
          - act: relu
          - _self_
        width: 128
    """,
    "model/selfish.yaml": """
        defaults:
          - _self_
          - base
        width: 5
    """,
    "model/act/relu.yaml": "name: relu\n",
    "model/act/gelu.yaml": "# @package _global_.activation\nname: gelu\n",
    "data/mnist.yaml": "set: mnist\n",
    "data/cifar.yaml": "set: cifar\n",
    "db/mysql.yaml": "host: localhost\n",
    "db/postgres.yaml": "host: pg\n",
    "extras/one.yaml": "one: 1\n",
}


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    for name, text in LAYOUT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@pytest.mark.parametrize(
    ("experiment", "overrides", "refused"),
    [
        ("main", [], False),
        ("main", ["db@storage=postgres"], False),
        ("main", ["data=mnist"], False),
        ("main", ["+extras=one"], True),  # already selected (optional, missing)
        ("main", ["~model/act"], True),  # rel.z still refers to model.act.name
        ("main", ["~model/act", "rel.z=none"], False),
        ("main", ["model/act=gelu", "rel.z=none"], False),
        ("main", ["model={width: 3}"], False),
        ("main", ["model={colour: 3}"], True),
        ("packaged", [], False),
        ("packaged", ["+experiment.extra=[1, {a: 2}]"], False),
        ("self_first", [], False),
    ],
    ids=repr,
)
def test_defaults_list_rules_agree(layout, experiment, overrides, refused):
    assert_agree(layout, experiment, overrides, refused)
