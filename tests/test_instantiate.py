"""Instantiation: _target_, _partial_, _args_, nested targets, caller kwargs, positioned errors."""

from __future__ import annotations

import functools
import textwrap
from datetime import datetime

import pytest
import torch

from mtlcli.algorithms import JointLearning
from mtlcli.backbones import MLP
from mtlcli.compose import compose
from mtlcli.errors import ConfigError, Origin
from mtlcli.heads import MTLHeads
from mtlcli.instantiate import instantiate, locate
from mtlcli.resources import shipped_dir

SHIPPED = shipped_dir("configs")

FAKE_TARGETS = '''
class Recorder:
    """Keeps what it was called with."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs


class Pair:
    def __init__(self, first, second=2):
        self.first = first
        self.second = second

    @classmethod
    def of(cls, value):
        return cls(value, value)


class Picky:
    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = size


def add(a, b):
    return a + b


NOT_CALLABLE = 3
'''


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    (folder / "mtlcli_fake_targets.py").write_text(FAKE_TARGETS)
    (folder / "mtlcli_fake_broken.py").write_text("import mtlcli_no_such_dependency\n")
    (folder / "mtlcli_fake_syntax.py").write_text("def oops(:\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield "mtlcli_fake_targets"


def config_error(*args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        instantiate(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


def test_target_with_keyword_arguments(fake):
    obj = instantiate({"_target_": f"{fake}.Pair", "first": 1, "second": 5})
    assert (type(obj).__name__, obj.first, obj.second) == ("Pair", 1, 5)


def test_function_target_and_class_attribute_target(fake):
    assert instantiate({"_target_": f"{fake}.add", "a": 2, "b": 3}) == 5
    pair = instantiate({"_target_": f"{fake}.Pair.of", "value": 4})
    assert (pair.first, pair.second) == (4, 4)
    assert locate("torch.optim.lr_scheduler.ReduceLROnPlateau") is torch.optim.lr_scheduler.ReduceLROnPlateau


def test_args_positional_and_caller_arguments(fake):
    obj = instantiate({"_target_": f"{fake}.Recorder", "_args_": [1, 2], "k": "config"})
    assert obj.args == (1, 2) and obj.kwargs == {"k": "config"}
    obj = instantiate({"_target_": f"{fake}.Recorder", "_args_": [1, 2], "k": "config"}, 9, k="caller", extra=True)
    assert obj.args == (9,)  # caller positionals replace _args_, as in Hydra
    assert obj.kwargs == {"k": "caller", "extra": True}


def test_nested_targets_are_built_first_and_plain_containers_pass_through(fake):
    config = {
        "_target_": f"{fake}.Recorder",
        "inner": {"_target_": f"{fake}.Pair", "first": {"_target_": f"{fake}.add", "a": 1, "b": 1}},
        "items": [{"_target_": f"{fake}.Pair", "first": 7}, 3, {"plain": [1, 2]}],
        "class_split": {1: [0, 1], 2: [2, 3]},
        "_args_": [{"_target_": f"{fake}.add", "a": 10, "b": 5}],
    }
    obj = instantiate(config)
    assert obj.args == (15,)
    assert obj.kwargs["inner"].first == 2
    assert obj.kwargs["items"][0].first == 7 and obj.kwargs["items"][1:] == [3, {"plain": [1, 2]}]
    assert obj.kwargs["class_split"] == {1: [0, 1], 2: [2, 3]}
    assert all(type(key) is int for key in obj.kwargs["class_split"])
    assert type(obj.kwargs["class_split"]) is dict
    assert instantiate({"a": [{"_target_": f"{fake}.add", "a": 1, "b": 2}]}) == {"a": [3]}


def test_recursive_false_keeps_nested_nodes(fake):
    nested = {"_target_": f"{fake}.add", "a": 1, "b": 2}
    obj = instantiate({"_target_": f"{fake}.Recorder", "_recursive_": False, "inner": nested})
    assert obj.kwargs["inner"] == nested


def test_partial_returns_a_partial_that_the_caller_completes(fake):
    made = instantiate({"_target_": f"{fake}.Pair", "_partial_": True, "second": 8})
    assert isinstance(made, functools.partial)
    pair = made(1)
    assert (pair.first, pair.second) == (1, 8)


def test_shipped_optimizer_and_scheduler_partials_complete_with_parameters():
    composed = compose("example_mtl_train", [], [SHIPPED], now=datetime(2024, 1, 1))
    model = torch.nn.Linear(3, 2)
    optimizer = instantiate(composed.config["optimizer"], origins=composed, path="optimizer")(model.parameters())
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.param_groups[0]["lr"] == composed.config["optimizer"]["lr"]
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in model.parameters()}
    scheduler = instantiate(composed.config["lr_scheduler"], origins=composed, path="lr_scheduler")(optimizer)
    assert type(scheduler) is torch.optim.lr_scheduler.ReduceLROnPlateau
    assert scheduler.patience == composed.config["lr_scheduler"]["patience"]


def test_shipped_algorithm_receives_the_injected_backbone_and_heads():
    composed = compose("example_mtl_train", [], [SHIPPED], now=datetime(2024, 1, 1))
    backbone = instantiate(composed.config["backbone"], origins=composed, path="backbone")
    assert isinstance(backbone, MLP) and backbone.output_dim == composed.config["backbone"]["output_dim"]
    heads = MTLHeads(backbone.output_dim, {1: 2, 2: 3})
    model = instantiate(composed.config["mtl_algorithm"], origins=composed, path="mtl_algorithm", backbone=backbone, heads=heads)
    assert isinstance(model, JointLearning)
    assert model.backbone is backbone and model.heads is heads


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("mtlcli_no_such_module.Thing", "there is no module named 'mtlcli_no_such_module'"),
        ("torch.optim.Adamm", "module 'torch.optim' has no attribute 'Adamm'; did you mean 'torch.optim.Adam'?"),
        ("torch.nope.Thing", "module 'torch' has no attribute 'nope'"),
        ("mtlcli_fake_broken.Thing", "importing module 'mtlcli_fake_broken' failed (No module named 'mtlcli_no_such_dependency')"),
        ("mtlcli_fake_syntax.Thing", "importing module 'mtlcli_fake_syntax' failed (SyntaxError"),
        ("mtlcli_fake_targets.Pair.nope", "type 'mtlcli_fake_targets.Pair' has no attribute 'nope'"),
        ("not a path", "is not a dotted import path"),
        ("mtlcli_fake_targets.NOT_CALLABLE", "is not a class or function (it is int)"),
    ],
)
def test_target_errors_say_what_is_wrong(fake, target, words):
    err = config_error({"_target_": target})
    assert words in err.message


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"first": 1, "secnd": 2}, "mtlcli_fake_targets.Pair has no argument 'secnd'; did you mean 'second'?"),
        ({}, "missing a required argument: 'first'"),
        ({"first": 1, "_args_": [1]}, "multiple values for argument 'first'"),
    ],
)
def test_argument_errors_name_the_class(fake, config, words):
    err = config_error({"_target_": f"{fake}.Pair", **config})
    assert words in err.message


def test_constructor_value_error_becomes_a_config_error(fake):
    err = config_error({"_target_": f"{fake}.Picky", "size": -1})
    assert err.message == "mtlcli_fake_targets.Picky rejected its arguments: size must be >= 0, got -1"


def test_partial_checks_the_keys_it_already_has(fake):
    assert "has no argument 'lrr'" in config_error({"_target_": "torch.optim.SGD", "_partial_": True, "lrr": 0.1}).message


def test_errors_point_at_the_composed_position(fake, tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "entrance.yaml").write_text("defaults:\n  - _self_\n  - experiment: null\n")
    path = tmp_path / "experiment" / "e.yaml"
    path.write_text(textwrap.dedent(f"""\
        # @package _global_
        model:
          _target_: {fake}.Pair
          first: 1
          secnd: 2
        bad:
          _target_: {fake}.Picky
          size: -3
        outer:
          inner:
            _target_: torch.optim.Adamm
        """))
    composed = compose("e", [], [tmp_path])
    err = config_error(composed.config["model"], origins=composed, path="model")
    assert err.origin == composed.key_origin("model.secnd") == Origin(str(path), 5, 3)
    err = config_error(composed.config["bad"], origins=composed, path="bad")
    assert err.origin == composed.origin("bad._target_") == Origin(str(path), 7, 13)
    err = config_error(composed.config["outer"], origins=composed, path="outer")
    assert err.origin == Origin(str(path), 11, 15)  # a nested target: its own position


def test_without_origins_the_message_names_the_config_key(fake):
    err = config_error({"_target_": "torch.optim.Adamm"}, path="optimizer")
    assert err.origin is None and err.message.startswith("optimizer: cannot import _target_ 'torch.optim.Adamm'")
    origins = {"optimizer._target_": Origin("x.yaml", 1, 11)}
    assert config_error({"_target_": "torch.optim.Adamm"}, origins=origins, path="optimizer").origin == Origin("x.yaml", 1, 11)
