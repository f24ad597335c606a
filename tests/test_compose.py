"""Composition: defaults lists, the search path, overrides, interpolation, positions."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from mtlcli.compose import Composed, compose, list_group_options, parse_override
from mtlcli.errors import ConfigError, Origin
from mtlcli.resources import shipped_dir
from mtlcli.yamlio import display_path, load_yaml, load_yaml_text, to_plain

SHIPPED = shipped_dir("configs")
FIXED = datetime(2024, 5, 6, 7, 8, 9)


def shipped(overrides=(), **kwargs) -> Composed:
    return compose("example_mtl_train", list(overrides), [SHIPPED], now=FIXED, **kwargs)


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def position_of(path: Path, line_text: str, token: str) -> tuple[int, int]:
    """1-based (line, col) of ``token`` on the first line containing ``line_text``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line_text in line:
            return number, line.index(token, line.index(line_text)) + 1
    raise AssertionError(f"{line_text!r} not in {path}")


def compose_error(*args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compose(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


ENTRANCE = """
defaults:
  - _self_
  - experiment: null
"""


# --- the shipped experiment ----------------------------------------------------------


def test_shipped_experiment_merges_each_group_file_under_its_group():
    composed = shipped()
    for group, option in [("mtl_dataset", "split_digits"), ("backbone", "mlp"), ("optimizer", "adam"), ("lr_scheduler", "reduce_lr_on_plateau")]:
        assert composed.config[group] == to_plain(load_yaml(SHIPPED / group / f"{option}.yaml"))
    trainer = to_plain(load_yaml(SHIPPED / "trainer" / "cpu.yaml"))
    experiment = to_plain(load_yaml(SHIPPED / "experiment" / "example_mtl_train.yaml"))
    assert composed.config["trainer"] == {**trainer, **experiment["trainer"]}  # experiment's _self_ comes last
    for key in ("expr_name", "train_tasks", "eval_tasks", "global_seed"):
        assert composed.config[key] == experiment[key]
    assert "defaults" not in composed.config and "experiment" not in composed.config


def test_shipped_experiment_interpolates_output_dir_with_one_timestamp():
    composed = shipped()
    stamp = FIXED.strftime("%Y-%m-%d_%H-%M-%S_%f")
    assert composed.config["misc"]["timestamp"] == stamp
    assert composed.config["output_dir"] == f"outputs/{composed.config['expr_name']}/{stamp}"


def test_choices_and_files_record_what_was_selected():
    composed = shipped(["optimizer=sgd"])
    assert composed.choices == {
        "experiment": "example_mtl_train",
        "mtl_dataset": "split_digits",
        "mtl_algorithm": "joint_learning",
        "backbone": "mlp",
        "optimizer": "sgd",
        "lr_scheduler": "reduce_lr_on_plateau",
        "trainer": "cpu",
    }
    assert composed.files[0] == SHIPPED / "entrance.yaml"
    assert composed.files[-1] == SHIPPED / "experiment" / "example_mtl_train.yaml"
    assert SHIPPED / "optimizer" / "sgd.yaml" in composed.files
    assert SHIPPED / "optimizer" / "adam.yaml" not in composed.files


def test_origins_point_at_the_file_line_and_column_that_set_the_value():
    composed = shipped()
    experiment = SHIPPED / "experiment" / "example_mtl_train.yaml"
    shown = display_path(experiment)
    # max_epochs: the experiment's value wins over trainer/cpu.yaml, so its position is the experiment's
    line, col = position_of(experiment, "max_epochs:", "10")
    assert composed.origin("trainer.max_epochs") == Origin(shown, line, col)
    assert composed.key_origin("trainer.max_epochs") == Origin(shown, line, col - len("max_epochs: "))
    adam = SHIPPED / "optimizer" / "adam.yaml"
    assert composed.origin("optimizer.lr") == Origin(display_path(adam), *position_of(adam, "lr:", "0.01"))
    digits = SHIPPED / "mtl_dataset" / "split_digits.yaml"
    assert composed.origin("mtl_dataset.cl_dataset.class_split.2") == Origin(display_path(digits), *position_of(digits, "class_split:", "[2, 3]"))
    assert composed.origin(("mtl_dataset", "cl_dataset", "class_split", 2)) == composed.origin("mtl_dataset.cl_dataset.class_split.2")
    # an interpolated value is reported where its ${...} was written
    assert composed.origin("output_dir") == Origin(shown, *position_of(experiment, "output_dir:", "outputs/"))
    # a key the config lacks: the closest existing parent's position
    assert composed.origin("trainer.nope") == composed.origin("trainer")
    assert (composed.has("trainer.max_epochs"), composed.has("trainer.nope")) == (True, False)


def test_composed_from_plain_data_has_placeholder_origins():
    composed = Composed(config={"a": {"b": 1}}, files=[], choices={})
    assert composed.origin("a.b") == Origin("<composed config>")
    assert composed.to_yaml() == "a:\n  b: 1\n"


def test_override_values_carry_the_command_line_as_origin():
    composed = shipped(["trainer.max_epochs=1"])
    assert composed.config["trainer"]["max_epochs"] == 1
    assert composed.origin("trainer.max_epochs") == Origin("<command line: trainer.max_epochs=1>")
    assert shipped(["optimizer=sgd"]).key_origin("optimizer") == Origin("<command line: optimizer=sgd>")


def test_to_yaml_round_trips_the_config():
    composed = shipped(["train_tasks=[1,3]"])
    assert to_plain(load_yaml_text(composed.to_yaml(), "<saved>")) == composed.config


def test_unresolved_compose_keeps_interpolations():
    composed = shipped(resolve=False)
    assert composed.resolved is False
    assert composed.config["output_dir"] == "outputs/${expr_name}/${misc.timestamp}"


def test_list_group_options_of_shipped_groups():
    assert list_group_options("optimizer", [SHIPPED]) == sorted(p.stem for p in (SHIPPED / "optimizer").glob("*.yaml"))
    assert list_group_options("no_such_group", [SHIPPED]) == []


# --- overrides -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("trainer.max_epochs=1", ("trainer", "max_epochs"), 1),
        ("train_tasks=[1,3]", ("train_tasks",), [1, 3]),
        ("optimizer.lr=1e-3", ("optimizer", "lr"), 0.001),
        ("expr_name='010'", ("expr_name",), "010"),
        ("expr_name=010", ("expr_name",), "010"),
        ("expr_name=my run", ("expr_name",), "my run"),
        ("global_seed=null", ("global_seed",), None),
        ("backbone.batch_normalization=False", ("backbone", "batch_normalization"), False),
        ("backbone.hidden_dims.0=32", ("backbone", "hidden_dims"), [32, 100]),
        ("mtl_dataset.cl_dataset.class_split={1: [0, 1, 2]}", ("mtl_dataset", "cl_dataset", "class_split", 1), [0, 1, 2]),
        ("trainer={max_epochs: 2}", ("trainer", "max_epochs"), 2),
        ("trainer={max_epochs: 2}", ("trainer", "device"), "cpu"),  # a dict value merges into the section
        ("+foo.bar=1", ("foo",), {"bar": 1}),
        ("++trainer.max_epochs=7", ("trainer", "max_epochs"), 7),
        ("++brand_new=x", ("brand_new",), "x"),
        ("+trainer={grad_clip: 1.0}", ("trainer", "grad_clip"), 1.0),
        ("global_seed=${train_tasks}", ("global_seed",), 5),
        ("expr_name=run_${global_seed}", ("expr_name",), "run_1"),
    ],
)
def test_key_overrides(override, key, expected):
    value = shipped([override]).config
    for part in key:
        value = value[part]
    assert value == expected


def test_delete_overrides():
    assert "misc" not in shipped(["~misc", "output_dir=outputs/fixed"]).config
    assert "device" not in shipped(["~trainer.device"]).config["trainer"]
    assert "eval_tasks" not in shipped(["~eval_tasks=5"]).config


def test_group_overrides_replace_the_selection():
    composed = shipped(["optimizer=sgd.yaml", "lr_scheduler=cosine", "trainer=gpu"])
    assert composed.config["optimizer"] == to_plain(load_yaml(SHIPPED / "optimizer" / "sgd.yaml"))
    cosine = to_plain(load_yaml(SHIPPED / "lr_scheduler" / "cosine.yaml"))
    assert cosine["T_max"] == "${trainer.max_epochs}"
    assert composed.config["lr_scheduler"] == {**cosine, "T_max": 10}  # interpolated
    assert composed.config["trainer"]["device"] == "cuda"
    assert composed.config["trainer"]["max_epochs"] == 10  # the experiment still sets it after the group file
    assert "lr_scheduler" not in shipped(["lr_scheduler=null"]).config
    # the experiment's own `trainer: {max_epochs: 10}` stays after the group's section is deleted
    assert "trainer" in shipped().config and shipped(["~trainer"]).config["trainer"] == {"max_epochs": 10}


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("trainer.max_epoch=1", "no key 'max_epoch' in 'trainer'; did you mean 'trainer.max_epochs'?"),
        ("expr_nam=x", "did you mean 'expr_name'?"),
        ("zzz=1", "to add it use '+zzz=1'"),
        ("trainer={foo: 1}", "no key 'foo' in 'trainer'; to add it use '+trainer={foo: 1}'"),
        ("+expr_name=x", "'expr_name' already exists; use 'expr_name=x'"),
        ("~nothing", "no key 'nothing' in the config"),
        ("~expr_name=other", "the value of 'expr_name' is 'example_mtl_train', not 'other'"),
        ("expr_name.sub=1", "'expr_name' is 'example_mtl_train', not a mapping"),
        ("optimizer=adamw", "unknown option 'adamw' for config group 'optimizer'; did you mean 'adam'?"),
        ("++optimizer=sgd", "'++' is for keys"),
        ("~optimizer=sgd", "config group 'optimizer' is not selected"),
        ("+optimizer=sgd", "config group 'optimizer' is selected twice"),
        ("backbone.hidden_dims.5=1", "no key '5' in 'backbone.hidden_dims'"),
    ],
)
def test_override_errors_name_the_problem(override, words):
    err = compose_error("example_mtl_train", [override], [SHIPPED], now=FIXED)
    assert words in str(err)


def test_unknown_group_option_lists_available_options():
    err = compose_error("example_mtl_train", ["optimizer=adamw"], [SHIPPED])
    assert err.origin == Origin("<command line>")
    assert err.hint == "available: " + ", ".join(list_group_options("optimizer", [SHIPPED]))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("=3", "missing the key"),
        ("a..b=1", "not a valid key"),
        ("trainer.max_epochs", "expected key=value"),
        ("a=[1,2", "unbalanced '['"),
        ("a={x: 1", "unbalanced '{'"),
        ("a=[1,]", "empty item"),
        ("a={x: }", "empty item"),
        ("a='open", "unclosed ' quote"),
        ("a=1,2", "sweeps"),
        ("a=choice(1,2)", "sweep functions"),
        ("a=x=y", "character '=' is not allowed"),
        ("a=~/data", "character '~' is not allowed"),
        ("a='x'y", "text after a quoted string"),
        ("1a=1", "not a valid key"),
        ("a=${x", "unclosed '${'"),
    ],
)
def test_malformed_overrides(text, words):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert f"bad override '{text}'" in str(info.value)
    assert words in str(info.value)
    assert info.value.origin == Origin("<command line>")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a=1", 1),
        ("a=-1.5", -1.5),
        ("a=1_000", 1000),
        ("a=.5", 0.5),
        ("a=inf", float("inf")),
        ("a=TRUE", True),
        ("a=NULL", None),
        ("a=", ""),
        ("a= x ", "x"),
        ("a=yes", "yes"),
        ("a=0x10", "0x10"),
        ("a=1e", "1e"),
        ("a='x, y'", "x, y"),
        ('a="it\\"s"', 'it"s'),
        ("a=x\\,y", "x,y"),
        ("a=[a b, 'c', [1]]", ["a b", "c", [1]]),
        ("a={x: null, 1: [0, 1], y: {z: true}}", {"x": None, 1: [0, 1], "y": {"z": True}}),
        ("a=${now:%Y}", "${now:%Y}"),
        ("a=/abs/path:with:colons", "/abs/path:with:colons"),
        ("a=[]", []),
        ("a={}", {}),
    ],
)
def test_override_values_parse_like_hydra(text, value):
    assert parse_override(text).value == value


def test_override_prefixes():
    assert (parse_override("+a.b=1").action, parse_override("++a=1").action) == ("add", "force")
    removal = parse_override("~a.b")
    assert (removal.action, removal.key, removal.has_value) == ("delete", "a.b", False)
    assert parse_override("~a=3").value == 3 and parse_override("~a=3").has_value
    assert parse_override("db@backup=mysql").package == "backup"


# --- the experiment argument and the search path ----------------------------------------


def test_unknown_experiment_suggests_the_closest_name():
    assert "did you mean 'example_mtl_train'" in compose_error("exmple", [], [SHIPPED]).message  # a misspelt start
    err = compose_error("example_mtl_trian", [], [SHIPPED])
    assert err.origin == Origin("<command line>")
    assert "unknown experiment 'example_mtl_trian'; did you mean 'example_mtl_train'?" in err.message
    assert "example_mtl_train" in err.hint


def test_experiment_given_as_a_file_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("# @package _global_\ndefaults:\n  - /optimizer: sgd\n  - _self_\nexpr_name: mine\noptimizer:\n  lr: 0.5\n")
    composed = compose(str(path), [], [SHIPPED])
    assert composed.config == {"optimizer": {**to_plain(load_yaml(SHIPPED / "optimizer" / "sgd.yaml")), "lr": 0.5}, "expr_name": "mine"}
    assert composed.choices["experiment"] == str(path.resolve())
    assert compose_error(str(tmp_path / "missing.yaml"), [], [SHIPPED]).message == f"experiment file '{tmp_path / 'missing.yaml'}' not found"


def test_user_folder_adds_an_option_to_a_shipped_group_and_shadows_shipped_files(tmp_path):
    user = make_tree(
        tmp_path / "configs",
        {
            "optimizer/adamw.yaml": "_target_: torch.optim.AdamW\n_partial_: true\nlr: 0.002\n",
            "backbone/mlp.yaml": "_target_: mtlcli.backbones.MLP\ninput_dim: 64\nhidden_dims: [8]\noutput_dim: 4\n",
            "experiment/tiny.yaml": "# @package _global_\ndefaults:\n  - /optimizer: adamw\n  - /backbone: mlp\n  - /trainer: cpu\n  - _self_\nexpr_name: tiny\n",
        },
    )
    search = [user, SHIPPED]
    assert "adamw" in list_group_options("optimizer", search) and "adam" in list_group_options("optimizer", search)
    composed = compose("tiny", [], search)
    assert composed.config["optimizer"]["_target_"] == "torch.optim.AdamW"
    assert composed.config["backbone"]["hidden_dims"] == [8]  # the user's mlp.yaml wins
    assert composed.config["trainer"] == to_plain(load_yaml(SHIPPED / "trainer" / "cpu.yaml"))  # shipped, not in user folder
    assert composed.origin("optimizer.lr").path == display_path(user / "optimizer" / "adamw.yaml")
    # the shipped experiment can select the user's option from the command line
    assert compose("example_mtl_train", ["optimizer=adamw"], search, now=FIXED).config["optimizer"]["lr"] == 0.002


# --- defaults lists ---------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    return make_tree(
        tmp_path,
        {
            "entrance.yaml": ENTRANCE,
            "model/base.yaml": "width: 1\nlayers: 2\ndropout: 0.1\n",
            "model/big.yaml": """
                defaults:
                  - base
                  - act: relu
                  - _self_
                width: 128
            """,
            "model/act/relu.yaml": "name: relu\n",
            "model/act/gelu.yaml": "name: gelu\n",
            "model/selfish.yaml": """
                defaults:
                  - _self_
                  - base
                width: 5
            """,
            "data/mnist.yaml": "set: mnist\n",
            "data/cifar.yaml": "set: cifar\n",
            "db/mysql.yaml": "host: localhost\n",
            "db/postgres.yaml": "host: pg\n",
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
            """,
            "experiment/local.yaml": """
                defaults:
                  - /model: big
                  - _self_
                name: local
            """,
        },
    )


def test_nested_defaults_packages_and_defaults_list_overrides(tree):
    config = compose("main", [], [tree]).config
    assert config == {
        "model": {"width": 128, "layers": 5, "dropout": 0.1, "act": {"name": "relu"}},
        "data": {"set": "cifar"},  # 'override /data: cifar' applies to the selection above it
        "storage": {"host": "localhost"},  # '/db@storage' moves the file's content
        "name": "main",
    }


def test_self_first_lets_defaults_win(tree):
    (tree / "experiment" / "selfish.yaml").write_text("# @package _global_\ndefaults:\n  - /model: selfish\n")
    assert compose("selfish", [], [tree]).config["model"]["width"] == 1  # model/selfish.yaml lists _self_ before base


def test_experiment_without_global_header_lands_in_its_package(tree):
    config = compose("local", [], [tree]).config
    assert config == {"experiment": {"model": {"width": 128, "layers": 2, "dropout": 0.1, "act": {"name": "relu"}}, "name": "local"}}


def test_nested_group_and_packaged_group_overrides(tree):
    config = compose("main", ["model/act=gelu", "db@storage=postgres", "data=mnist"], [tree]).config
    assert config["model"]["act"] == {"name": "gelu"}
    assert config["storage"] == {"host": "pg"}
    assert config["data"] == {"set": "mnist"}  # the command line beats the experiment's own override
    assert "act" not in compose("main", ["~model/act"], [tree]).config["model"]


def test_package_headers(tree):
    (tree / "model" / "act" / "gelu.yaml").write_text("# @package activation\nname: gelu\n")
    config = compose("main", ["model/act=gelu"], [tree]).config
    assert config["activation"] == {"name": "gelu"} and "act" not in config["model"]


@pytest.mark.parametrize(
    ("experiment_text", "line", "words"),
    [
        ("defaults:\n  - /model: bigg\n", 2, "unknown option 'bigg' for config group 'model'; did you mean 'big'?"),
        ("defaults:\n  - /modle: big\n", 2, "unknown config group 'modle'; did you mean 'model'?"),
        ("defaults:\n  - /model: big\n  - override /data: cifar\n", 3, "'override data' matches no selection"),
        ("defaults:\n  - override /model: big\n  - /data: cifar\n", 2, "must come after all other entries"),
        ("defaults:\n  - _self_\n  - /model: big\n  - _self_\n", 4, "_self_ appears twice"),
        ("defaults:\n  - /model: big\n  - /model: big\n", 2, "config group 'model' is selected twice"),
        ("defaults:\n  - /model: ???\n", 2, "no option chosen for config group 'model'"),
        ("defaults:\n  - bad\n", 2, "the defaults lists include each other in a loop"),
        ("defaults:\n  - /model: [big]\n", 2, "list of options"),
        ("defaults:\n  - nowhere\n", 2, "config 'experiment/nowhere' not found"),
        ("defaults:\n  - maybe /model: big\n", 2, "unknown keyword 'maybe'"),
        ("defaults: {model: big}\n", 1, "'defaults' must be a list"),
    ],
)
def test_defaults_errors_point_at_the_entry(tree, experiment_text, line, words):
    path = tree / "experiment" / "bad.yaml"
    path.write_text("# @package _global_\n" + experiment_text)
    err = compose_error("bad", [], [tree])
    assert words in err.message
    assert err.origin.path == display_path(path)
    assert err.origin.line == line + 1


def test_unknown_option_error_points_at_the_option_value(tree):
    path = tree / "experiment" / "bad.yaml"
    path.write_text("defaults:\n  - /model: bigg\n")
    err = compose_error("bad", [], [tree])
    assert err.origin == Origin(display_path(path), 2, 13)
    assert err.hint == "available: base, big, selfish"


def test_optional_missing_and_null_selections_are_skipped(tree):
    (tree / "experiment" / "opt.yaml").write_text("# @package _global_\ndefaults:\n  - optional /model: none_such\n  - /data: null\n  - _self_\nx: 1\n")
    composed = compose("opt", [], [tree])
    assert composed.config == {"x": 1}
    assert composed.choices["data"] is None


def test_missing_entrance(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "e.yaml").write_text("a: 1\n")
    assert "entrance.yaml not found" in compose_error("e", [], [tmp_path]).message


def test_yaml_errors_in_group_files_surface_with_position(tree):
    (tree / "data" / "mnist.yaml").write_text("set: mnist\nset: again\n")
    (tree / "experiment" / "e.yaml").write_text("defaults:\n  - /data: mnist\n")
    err = compose_error("e", [], [tree])
    assert err.origin == Origin(display_path(tree / "data" / "mnist.yaml"), 2, 1)


def test_empty_group_file_is_an_empty_config(tree):
    (tree / "data" / "none.yaml").write_text("")
    (tree / "experiment" / "e.yaml").write_text("# @package _global_\ndefaults:\n  - /data: none\n")
    assert compose("e", [], [tree]).config == {"data": {}}


# --- interpolation ----------------------------------------------------------------------


def interp_tree(root: Path, body: str) -> Path:
    return make_tree(root, {"entrance.yaml": ENTRANCE, "experiment/e.yaml": "# @package _global_\n" + textwrap.dedent(body).lstrip("\n")})


def test_interpolation_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLCLI_TEST_ROOT", "/data")
    monkeypatch.delenv("MTLCLI_TEST_UNSET", raising=False)
    root = interp_tree(
        tmp_path,
        """
        name: run
        sizes: [3, 4]
        model:
          width: ${sizes[1]}
          same: ${.width}
          up: ${..name}
          copy: ${model.width}
        dims: ${sizes}
        path: out/${name}/${model.width}
        flag: true
        text: flag=${flag}
        env: ${oc.env:MTLCLI_TEST_ROOT}/x
        env_default: ${oc.env:MTLCLI_TEST_UNSET,fallback}
        env_null: ${oc.env:MTLCLI_TEST_UNSET,null}
        env_number: ${oc.env:MTLCLI_TEST_UNSET,5}
        picked: ${oc.select:model.nope,7}
        stamp: ${now:%Y}-${now:%m}
        escaped: \\${name}
        dotted: ${sizes.0}
        """,
    )
    config = compose("e", [], [root], now=FIXED).config
    assert config["model"] == {"width": 4, "same": 4, "up": "run", "copy": 4}
    assert config["dims"] == [3, 4]
    assert config["path"] == "out/run/4"
    assert config["text"] == "flag=True"  # str() of the value, as OmegaConf does
    assert config["env"] == "/data/x"
    assert (config["env_default"], config["env_null"], config["env_number"]) == ("fallback", None, "5")
    assert config["picked"] == 7
    assert config["stamp"] == "2024-05"
    assert config["escaped"] == "${name}"
    assert config["dotted"] == 3


def test_one_timestamp_per_compose_call(tmp_path):
    root = interp_tree(tmp_path, "a: ${now:%Y-%m-%d_%H-%M-%S.%f}\nb: ${now:%Y-%m-%d_%H-%M-%S.%f}\n")
    config = compose("e", [], [root]).config
    assert config["a"] == config["b"]
    assert datetime.strptime(config["a"], "%Y-%m-%d_%H-%M-%S.%f") <= datetime.now()


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("a: 1\nb: ${c}\n", 3, "interpolation '${c}': key 'c' not found"),
        ("model:\n  width: 3\nb: x${model.widht}\n", 4, "key 'model.widht' not found; did you mean 'width'?"),
        ("a: ${b}\nb: ${a}\n", 2, "interpolation cycle"),
        ("a:\n  x: ${a}\n", 3, "interpolation cycle"),
        ("a: ???\nb: ${a}\n", 3, "has no value (???)"),
        ("a: ${oc.env:MTLCLI_TEST_UNSET}\n", 2, "environment variable 'MTLCLI_TEST_UNSET' is not set"),
        ("a: ${nope:1}\n", 2, "unknown resolver 'nope'"),
        ("a: ${..x}\n", 2, "goes above the top"),
        ("a: ${now:}\n", 2, "needs exactly one strftime format"),
    ],
)
def test_interpolation_errors_point_at_the_value(tmp_path, monkeypatch, body, line, words):
    monkeypatch.delenv("MTLCLI_TEST_UNSET", raising=False)
    root = interp_tree(tmp_path, body)
    err = compose_error("e", [], [root])
    assert words in err.message
    assert err.origin.path == display_path(root / "experiment" / "e.yaml")
    assert err.origin.line == line


def test_interpolation_error_from_an_override_names_the_command_line():
    err = compose_error("example_mtl_train", ["expr_name=${nope}"], [SHIPPED])
    assert err.origin == Origin("<command line: expr_name=${nope}>")
