"""Building a run from a composed config: tasks, heads and backbone fit before training."""

import re

import pytest
import torch

from mtlcli.compose import compose
from mtlcli.errors import ConfigError
from mtlcli.experiment import build_run, resolve_tasks


def _build(*overrides):
    composed = compose("example_mtl_train", list(overrides))
    return build_run(composed.config, composed)


def test_int_tasks_mean_one_to_n_and_lists_name_ids():
    assert resolve_tasks(3, [1, 2, 3, 4], "train_tasks") == [1, 2, 3]
    assert resolve_tasks([4, 2], [1, 2, 3, 4], "train_tasks") == [4, 2]


@pytest.mark.parametrize("value, message", [
    (0, ">= 1"),
    ([1, 1], "twice"),
    ([1, 9], "[9]"),
    (True, "int N"),
    ("3", "int N"),
    ([], "non-empty"),
])
def test_bad_task_lists_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve_tasks(value, [1, 2, 3], "train_tasks")


def test_heads_follow_the_trained_tasks_and_their_class_counts():
    built = _build("train_tasks=[1,3]", "eval_tasks=[3]", "mtl_dataset.cl_dataset.class_split={1: [0, 1, 2], 2: [3, 4], 3: [5, 6], 4: [7], 5: [8, 9]}")
    assert built.model.heads.num_classes == {1: 3, 3: 2}
    assert built.eval_tasks == [3]


def test_evaluating_an_untrained_task_is_refused():
    with pytest.raises(ConfigError, match="not in train_tasks"):
        _build("train_tasks=[1,2]", "eval_tasks=[1,3]")


def test_backbone_that_cannot_read_the_inputs_is_reported_before_training():
    with pytest.raises(ConfigError, match=r"input_dim=784 but a sample has 64 values"):
        _build("backbone.input_dim=784")


def test_backbone_whose_declared_output_dim_is_wrong_is_reported(monkeypatch):
    from mtlcli.backbones import MLP

    original = MLP.__init__

    def lying_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.output_dim = self.output_dim + 1  # declares one more feature than it produces

    monkeypatch.setattr(MLP, "__init__", lying_init)
    with pytest.raises(ConfigError, match="dimension mismatch: the backbone declares output_dim=65 but produces 64"):
        _build()


def test_same_seed_builds_identical_models_and_different_seeds_do_not():
    a = _build().model.state_dict()
    b = _build().model.state_dict()
    c = _build("global_seed=2").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("override, message", [
    ("~trainer", "'trainer' has no _target_"),
    ("global_seed=99999999999999999999999", "global_seed must be an int in 0..2**63-1"),
    ("backbone.output_dim=0", "output_dim must be >= 1, got 0"),
    ("backbone.hidden_dims=[0]", r"hidden_dims\[0\] must be >= 1, got 0"),
    ("trainer.max_epochs=-3", "max_epochs must be >= 0, got -3"),
    ("trainer.device=tpu", "unknown device 'tpu'"),
])
def test_impossible_settings_are_positioned_config_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")) as caught:
        _build("trainer.max_epochs=1", override)
    assert caught.value.origin is not None


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    from mtlcli.experiment import _claim_output_dir

    existing = tmp_path / "afile"
    existing.write_text("mine")
    with pytest.raises(ConfigError, match="is an existing file, not a folder"):
        _claim_output_dir({"output_dir": str(existing)}, None, "a: 1\n")
    assert existing.read_text() == "mine"


def test_two_runs_claiming_one_output_dir_one_wins_and_the_other_is_told(tmp_path):
    from mtlcli.errors import MtlcliError
    from mtlcli.experiment import _claim_output_dir

    config = {"output_dir": str(tmp_path / "run")}
    assert _claim_output_dir(config, None, "first: 1\n") == tmp_path / "run"
    with pytest.raises(MtlcliError, match="another run is using it") as caught:
        _claim_output_dir(config, None, "second: 2\n")
    assert "--resume" not in str(caught.value)  # no checkpoint there: nothing to resume
    assert (tmp_path / "run" / "config.yaml").read_text() == "first: 1\n"


@pytest.mark.parametrize("batch_size, world_size, batchnorm, message", [
    (1, 1, True, "gives fewer than 2 sample(s) per batch"),
    (431, 1, True, "the last training batch of each epoch has 1 sample(s)"),
    (3, 2, False, "the last training batch of each epoch has 1 sample(s)"),
    (1, 2, False, "gives fewer than 1 sample(s) per process per batch"),
])
def test_batches_every_process_and_batchnorm_can_use_are_checked_before_training(batch_size, world_size, batchnorm, message):
    from mtlcli.experiment import _check_pieces

    with pytest.raises(ConfigError, match=re.escape(message)):
        _check_pieces(1294, batch_size, world_size, batchnorm)


def test_batch_sizes_that_leave_no_short_piece_pass():
    from mtlcli.experiment import _check_pieces

    _check_pieces(1294, 64, 1, True)     # last batch of 14
    _check_pieces(1294, 431, 1, False)   # one sample is fine without BatchNorm
    _check_pieces(1294, 647, 2, True)    # two full batches, no remainder
