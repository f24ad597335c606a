"""The shipped trainer configs list every Trainer argument, so each can be overridden
as ``trainer.KEY=VALUE`` (an override of a key that is not there is an error)."""

import pytest

from mtlcli.engine import Trainer
from mtlcli.resources import shipped_dir
from mtlcli.signature import signature_of
from mtlcli.yamlio import load_yaml, to_plain

TRAINER_CONFIGS = sorted((shipped_dir("configs") / "trainer").glob("*.yaml"))


@pytest.mark.parametrize("path", TRAINER_CONFIGS, ids=[p.name for p in TRAINER_CONFIGS])
def test_trainer_config_lists_every_argument_with_a_valid_value(path):
    config = to_plain(load_yaml(path))
    fields = [f.name for f in signature_of(Trainer).fields]
    assert [k for k in config if k != "_target_"] == fields
    if config["device"] != "cuda":
        Trainer(**{k: v for k, v in config.items() if k != "_target_"})
