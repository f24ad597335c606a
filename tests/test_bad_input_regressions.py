"""Bad inputs that once ended in a traceback, a silent success or a wrong position: each test
names the input and the one-line error (and position) it must give now."""

from __future__ import annotations

import functools

import pytest
import torch

from mtlcli.errors import ConfigError, Origin
from mtlcli.instantiate import instantiate

TARGETS = '''
from mtlcli.errors import ConfigError


class Sized:
    def __init__(self, batch_size: int = 1, other: int = 0):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")


class PositionalOnly:
    def __init__(self, backbone, heads, /, b: int = 2):
        pass


class Unfinished:
    def __init__(self):
        raise NotImplementedError
'''


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    (folder / "mtlcli_regression_targets.py").write_text(TARGETS)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield "mtlcli_regression_targets"


def config_error(*args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        instantiate(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


ORIGINS = {
    "opt._target_": Origin("opt.yaml", 1, 11),
    "data._target_": Origin("data.yaml", 1, 11),
    "data.batch_size": Origin("<command line: data.batch_size=0>"),
    "model._target_": Origin("model.yaml", 1, 11),
}


# -- a _partial_ node's target rejecting a value when the trainer completes it ---------------

def test_partial_optimizer_rejecting_its_lr_is_a_config_error_at_its_target():
    # optimizer.lr=-1 used to escape as torch's ValueError from deep inside the run's build.
    made = instantiate({"_target_": "torch.optim.Adam", "_partial_": True, "lr": -1}, origins=ORIGINS, path="opt")
    assert isinstance(made, functools.partial)
    with pytest.raises(ConfigError) as info:
        made([torch.nn.Parameter(torch.zeros(2))])
    assert info.value.origin == Origin("opt.yaml", 1, 11)
    assert info.value.message == "torch.optim.Adam rejected its arguments: Invalid learning rate: -1"


def test_partial_scheduler_completed_with_the_optimizer_reports_its_rejection():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    made = instantiate({"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True, "factor": 2.0})
    with pytest.raises(ConfigError, match="ReduceLROnPlateau rejected its arguments: Factor should be < 1.0"):
        made(optimizer)


def test_a_completed_partial_still_builds_the_object():
    made = instantiate({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5})
    optimizer = made([torch.nn.Parameter(torch.zeros(2))], momentum=0.9)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.5 and optimizer.defaults["momentum"] == 0.9


# -- torch's RuntimeError argument checks ---------------------------------------------------

def test_torch_runtime_error_from_a_constructor_is_a_config_error():
    # backbone.hidden_dims=[-1] used to end in torch's RuntimeError traceback.
    err = config_error({"_target_": "mtlcli.backbones.MLP", "input_dim": 4, "hidden_dims": [-1], "output_dim": 3},
                       origins={"backbone._target_": Origin("mlp.yaml", 1, 11)}, path="backbone")
    assert err.origin == Origin("mlp.yaml", 1, 11)
    assert err.message.startswith("mtlcli.backbones.MLP rejected its arguments: ")
    assert "negative dimension -1" in err.message


def test_not_implemented_error_in_a_constructor_stays_a_bug(targets):
    with pytest.raises(NotImplementedError):
        instantiate({"_target_": f"{targets}.Unfinished"})


# -- where a constructor's own unpositioned ConfigError points ------------------------------

def test_constructor_message_naming_its_argument_without_a_colon_points_at_that_argument(targets):
    # mtl_dataset.batch_size=0 used to point at the dataset's _target_ line in the shipped file.
    err = config_error({"_target_": f"{targets}.Sized", "batch_size": 0}, origins=ORIGINS, path="data")
    assert err.origin == Origin("<command line: data.batch_size=0>")
    assert err.message == "batch_size must be a positive integer, got 0"


def test_constructor_message_not_naming_a_given_argument_points_at_the_target(targets):
    err = config_error({"_target_": f"{targets}.Sized", "batch_size": 0},
                       origins={"data._target_": Origin("data.yaml", 1, 11)}, path="data")
    assert err.origin == Origin("data.yaml", 1, 11)


# -- keyword arguments a signature takes positionally only ----------------------------------

class _GroupChosenOnTheCommandLine:
    """Origins as composition gives them: a key absent from the config (an injected one)
    has its parent's key origin, here the command-line group choice."""

    def origin(self, key: str) -> Origin:
        if key == "model._target_":
            return Origin("model.yaml", 1, 11)
        raise KeyError(key)

    def key_origin(self, key: str) -> Origin:
        return Origin("<command line: model=x>")


def test_injected_positional_only_argument_is_named_as_such_at_the_target(targets):
    # It used to say "has no argument 'backbone'; it takes: b", at the command line's group choice.
    err = config_error({"_target_": f"{targets}.PositionalOnly"}, origins=_GroupChosenOnTheCommandLine(), path="model",
                       backbone=torch.nn.Identity(), heads=torch.nn.Identity())
    assert err.origin == Origin("model.yaml", 1, 11)
    assert err.message == f"{targets}.PositionalOnly takes 'backbone' positionally only, so it cannot be given by name"
