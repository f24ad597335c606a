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
    # A negative layer size used to end in torch's RuntimeError traceback.
    err = config_error({"_target_": "torch.nn.Linear", "in_features": 4, "out_features": -1},
                       origins={"backbone._target_": Origin("linear.yaml", 1, 11)}, path="backbone")
    assert err.origin == Origin("linear.yaml", 1, 11)
    assert err.message.startswith("torch.nn.Linear rejected its arguments: ")
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


# -- what `mtlcli validate` is pointed at -----------------------------------------------------

def test_validate_a_folder_without_yaml_is_a_usage_error_not_a_clean_pass(tmp_path):
    from mtlcli.errors import UsageError
    from mtlcli.validate import config_files

    (tmp_path / "notes.txt").write_text("x: 1\n")
    with pytest.raises(UsageError, match="no YAML files"):
        config_files([tmp_path])


def test_validate_names_a_special_file_and_a_looping_link_for_what_they_are(tmp_path):
    import os

    from mtlcli.errors import UsageError
    from mtlcli.validate import config_files

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="pipe.yaml: not a regular file or folder"):
        config_files([fifo])
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    with pytest.raises(UsageError, match="a.yaml: a broken or looping link"):
        config_files([tmp_path / "a.yaml"])


# -- the experiment argument and the package header -------------------------------------------

EXPERIMENT = """\
defaults:
  - /mtl_dataset: split_digits.yaml
  - /mtl_algorithm: joint_learning.yaml
  - /backbone: mlp.yaml
  - /optimizer: adam.yaml
  - /trainer: cpu.yaml
  - _self_
train_tasks: 2
"""


def compose_error(experiment: str, roots=None) -> ConfigError:
    from mtlcli.compose import compose
    from mtlcli.resources import shipped_dir

    with pytest.raises(ConfigError) as info:
        compose(experiment, [], roots or [shipped_dir("configs")])
    assert "\n" not in str(info.value)
    return info.value


def test_experiment_argument_naming_a_folder_or_a_device_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert compose_error("runs").message == "experiment file 'runs' is a folder"
    assert compose_error("/dev/null").message == "experiment file '/dev/null' is not a regular file"


def test_experiment_argument_naming_an_existing_file_without_yaml_suffix_reads_it(tmp_path, monkeypatch):
    # It used to say "unknown experiment 'exp.txt'" about a file that is right there.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.txt").write_text("train_tasks: [1,\n")
    err = compose_error("exp.txt")
    assert err.origin.path == "exp.txt" and err.message.startswith("invalid YAML")


@pytest.mark.parametrize("header, problem, col", [
    ("# @package", "needs a package name, got '# @package'", 3),
    ("#  @package a b", "takes one package name, got '#  @package a b'", 4),
])
def test_malformed_package_header_is_an_error_at_the_header(tmp_path, header, problem, col):
    # Hydra refuses these; mtlcli used to ignore the header and compose the file elsewhere.
    path = tmp_path / "exp.yaml"
    path.write_text(f"{header}\n{EXPERIMENT}")
    err = compose_error(str(path))
    assert (err.origin.line, err.origin.col) == (1, col)
    assert err.message == f"'# @package' header {problem}"


def test_package_header_after_a_byte_order_mark_is_an_error_not_ignored(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"\xef\xbb\xbf# @package _global_\n" + EXPERIMENT.encode())
    err = compose_error(str(path))
    assert (err.origin.line, err.origin.col) == (1, 1)
    assert err.message == "the file starts with a byte-order mark, which hides its '# @package' header"


@pytest.mark.parametrize("header, under", [("", "experiment"), ("# @package foo.bar\n", "foo")])
def test_experiment_without_global_package_is_named_before_its_sections(tmp_path, header, under):
    # It used to stop at "missing required field 'backbone' ... of JointLearning" in the
    # shipped joint_learning.yaml, a file the user did not touch.
    from mtlcli.compose import compose
    from mtlcli.resources import shipped_dir
    from mtlcli.validate import check_experiment

    (tmp_path / "experiment").mkdir()
    path = tmp_path / "experiment" / "mine.yaml"
    path.write_text(header + EXPERIMENT)
    composed = compose("mine", [], [tmp_path, shipped_dir("configs")])
    first = [f for f in check_experiment(composed) if f.is_error][0]
    assert (first.path, first.line, first.col, first.code) == (str(path), 1, 1, "bad-experiment")
    assert first.message.endswith(f"the experiment's sections ended up under '{under}', not at the top level")
    assert "mtl_algorithm" in first.message
    assert first.hint == "start the experiment file with the line '# @package _global_'"


# -- new-algorithm --name -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escape", "sub/dir", ".hidden", ".yaml"])
def test_new_algorithm_name_with_folders_is_refused_before_writing(tmp_path, monkeypatch, name):
    # `--name ../../escape` used to write escape.yaml two folders above configs/mtl_algorithm/.
    from mtlcli.errors import UsageError
    from mtlcli.scaffold import new_algorithm

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="--name must be a file name without folders"):
        new_algorithm("JointLearning", config_dir=tmp_path / "configs", name=name, echo=lambda *_: None)
    assert list(tmp_path.rglob("*")) == []


def test_new_algorithm_name_with_yaml_suffix_still_names_the_file(tmp_path, monkeypatch):
    from mtlcli.scaffold import new_algorithm

    monkeypatch.chdir(tmp_path)
    new_algorithm("JointLearning", config_dir=tmp_path / "configs", name="mine.yaml", echo=lambda *_: None)
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml")] == ["configs/mtl_algorithm/mine.yaml"]


# -- experiment fields checked before any work ---------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("expr_name=null", "expr_name must be a non-empty string, got null"),
    ("output_dir=''", "output_dir must be a non-empty string"),
    ("global_seed=-1", "global_seed must be an int in 0..2**63-1, got -1"),
])
def test_experiment_fields_are_checked_at_their_override(override, message):
    from mtlcli.compose import compose
    from mtlcli.validate import check_experiment

    (finding,) = [f for f in check_experiment(compose("example_mtl_train", [override])) if f.is_error]
    assert finding.message.startswith(message)
    assert str(finding.origin) == f"<command line: {override}>"


def test_a_removed_section_is_reported_in_the_experiment_file_not_the_entrance():
    from mtlcli.compose import compose
    from mtlcli.validate import check_experiment

    (finding,) = [f for f in check_experiment(compose("example_mtl_train", ["mtl_dataset=null"])) if f.is_error]
    assert finding.origin.path.endswith("example_mtl_train.yaml")
    assert "has no mtl_dataset config" in finding.message
