"""``mtlcli validate``: each finding kind, at its exact line and column."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from mtlcli.diagnostics import CODES, Finding
from mtlcli.errors import ConfigError
from mtlcli.validate import check_experiment, ensure_valid, validate_file, validate_paths

FIXTURES = Path(__file__).parent / "fixtures"


def _register_cases() -> str:
    """The signature fixture module, importable by dotted path (for ``_target_``)."""
    name = "mtlcli_test_signature_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / "signature_cases.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return name


CASES = _register_cases()


def write(tmp_path: Path, group: str | None, text: str | bytes, name: str = "x.yaml") -> Path:
    folder = tmp_path / "configs" / group if group else tmp_path / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def check(tmp_path: Path, group: str | None, text: str | bytes) -> list[Finding]:
    return validate_file(write(tmp_path, group, text))


def where(findings: list[Finding]) -> list[tuple[int, int, str, str]]:
    return [(f.line, f.col, f.severity, f.code) for f in findings]


# -- files that are not valid YAML ---------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: 1\n\tb: 2\n", (2, 1, "error", "yaml-syntax")),                 # a tab
        ("a: 1\nb: 2\na: 3\n", (3, 1, "error", "duplicate-key")),
        ("", (0, 0, "error", "empty-file")),
        ("# only a comment\n", (0, 0, "error", "empty-file")),
        (b"a: 1\nb: caf\xe9\n", (2, 7, "error", "not-utf8")),
        ("- a\n- b\n", (1, 1, "error", "not-a-mapping")),
    ],
)
def test_unreadable_files(tmp_path, text, expected):
    assert where(check(tmp_path, None, text)) == [expected]


def test_bad_indentation_points_at_the_offending_line(tmp_path):
    findings = check(tmp_path, None, "a:\n  b: 1\n c: 2\n")
    assert [(f.line, f.code) for f in findings] == [(3, "yaml-syntax")]


# -- _target_ ------------------------------------------------------------------------------

def test_component_without_target(tmp_path):
    assert where(check(tmp_path, "mtl_algorithm", "# tuned\nlr: 1\n")) == [(2, 1, "error", "missing-target")]


def test_unimportable_target_suggests_the_close_name(tmp_path):
    findings = check(tmp_path, "mtl_algorithm", "_target_: mtlcli.algorithms.JointLearnin\n")
    assert where(findings) == [(1, 11, "error", "bad-target")]
    assert findings[0].hint == "did you mean 'mtlcli.algorithms.JointLearning'?"


def test_wrong_module_segment_suggests_the_fixed_path(tmp_path):
    findings = check(tmp_path, "backbone", "_target_: mtlcli.backbone.MLP\ninput_dim: 2\n")
    assert where(findings) == [(1, 11, "error", "bad-target")]
    assert findings[0].hint == "did you mean 'mtlcli.backbones.MLP'?"


def test_short_name_suggests_the_full_path(tmp_path):
    findings = check(tmp_path, "mtl_algorithm", "_target_: JointLearning\n")
    assert findings[0].code == "bad-target" and findings[0].hint == "did you mean 'mtlcli.algorithms.JointLearning'?"


def test_target_that_is_not_callable(tmp_path):
    findings = check(tmp_path, None, "thing:\n  _target_: mtlcli.algorithms.BUILTIN_ALGORITHMS\n")
    assert where(findings) == [(2, 13, "error", "not-callable")]


def test_algorithm_target_must_be_an_mtl_algorithm(tmp_path):
    findings = check(tmp_path, "mtl_algorithm", "_target_: mtlcli.backbones.MLP\ninput_dim: 3\n")
    assert where(findings) == [(1, 11, "error", "wrong-base-class")]  # and no noise about MLP's fields


# -- fields ----------------------------------------------------------------------------------

def test_missing_required_fields_point_at_the_target(tmp_path):
    text = "# an MLP\n_target_: mtlcli.backbones.MLP\ninput_dim: 64\nhidden_dims: [8]\n"
    findings = check(tmp_path, "backbone", text)
    assert where(findings) == [(2, 1, "error", "missing-field")]
    assert "'output_dim' (int)" in findings[0].message
    assert "size of the shared representation" in findings[0].hint  # the docstring line


def test_unknown_field_with_did_you_mean(tmp_path):
    text = "_target_: torch.optim.Adam\n_partial_: true\nlr: 0.01\n  # comment\nweight_decy: 0.0\n"
    findings = check(tmp_path, "optimizer", text)
    assert where(findings) == [(5, 1, "error", "unknown-field")]
    assert findings[0].hint == "did you mean 'weight_decay'?"


def test_injected_field(tmp_path):
    findings = check(tmp_path, "mtl_algorithm", "_target_: mtlcli.algorithms.JointLearning\nheads: 3\n")
    assert where(findings) == [(2, 1, "error", "injected-field")]


def test_positional_only_argument_cannot_be_set_by_name(tmp_path):
    findings = check(tmp_path, None, f"_target_: {CASES}.Positional\nfirst: 1\n")
    assert where(findings) == [(2, 1, "error", "not-settable")]
    assert "positional-only" in findings[0].hint


def test_positional_only_argument_through_args(tmp_path):
    ok = check(tmp_path, None, f"_target_: {CASES}.Positional\n_args_: [1, 2]\nlast: q\n")
    assert ok == []
    missing = check(tmp_path, None, f"_target_: {CASES}.Positional\nsecond: 3\n")
    assert where(missing) == [(1, 1, "error", "missing-field")] and "_args_" in missing[0].hint
    wrong = check(tmp_path, None, f"_target_: {CASES}.Positional\n_args_: [1, x]\n")
    assert where(wrong) == [(2, 13, "error", "type-mismatch")]


def test_unfilled_value_is_a_warning_in_a_group_file(tmp_path):
    text = "_target_: mtlcli.backbones.MLP\ninput_dim: ???\nhidden_dims: [8]\noutput_dim: 4\n"
    findings = check(tmp_path, "backbone", text)
    assert where(findings) == [(2, 12, "warning", "unfilled-value")]


# -- values against annotations ---------------------------------------------------------------

EVERYTHING_OK = f"""_target_: {CASES}.Everything
required_int: 3
ratio: 1          # an int is a fine float
maybe: null
mode: max
either: text
sizes: []
weights: {{a: 1, b: 0.5}}
pair: [1, 2.5]    # YAML has no tuples
reduction: sum    # an Enum by value
strict: false
new_style: 4
"""


def test_values_that_fit_their_annotations(tmp_path):
    assert check(tmp_path, None, EVERYTHING_OK) == []


@pytest.mark.parametrize(
    "line, expected_col, message",
    [
        ("required_int: true", 15, "required_int: expected int, got true (bool)"),
        ("required_int: 2.5", 15, "required_int: expected int, got 2.5 (float)"),
        ("ratio: '0.1'", 8, "ratio: expected float, got '0.1' (str)"),
        ("maybe: [1]", 8, "maybe: expected int | None, got a list of 1"),
        ("mode: mx", 7, "mode: expected one of 'min', 'max', got 'mx' (str)"),
        ("either: [1]", 9, "either: expected int | str, got a list of 1"),
        ("sizes: [1, two, 3]", 12, "sizes[1]: expected int, got 'two' (str)"),
        ("weights: {a: 1, b: x}", 20, "weights['b']: expected float, got 'x' (str)"),
        ("pair: [1, 2, 3]", 7, "pair: expected tuple[float, float] (a list of 2), got a list of 3"),
        ("reduction: mean_", 12, "reduction: expected Reduction value, one of 'mean', 'sum', got 'mean_' (str)"),
        ("strict: 1", 9, "strict: expected bool, got 1 (int)"),
    ],
)
def test_type_mismatch_at_the_exact_value(tmp_path, line, expected_col, message):
    key = line.split(":")[0]
    lines = [ln if not ln.startswith(key + ":") else line for ln in EVERYTHING_OK.splitlines()]
    row = next(i for i, ln in enumerate(lines, 1) if ln == line)
    findings = check(tmp_path, None, "\n".join(lines) + "\n")
    assert where(findings) == [(row, expected_col, "error", "type-mismatch")]
    assert findings[0].message == message


def test_literal_and_quoted_number_hints(tmp_path):
    findings = check(tmp_path, None, EVERYTHING_OK.replace("mode: max", "mode: mx").replace("ratio: 1 ", "ratio: '1'"))
    hints = {f.message.split(":")[0]: f.hint for f in findings}
    assert hints == {"ratio": "remove the quotes: a quoted number is a string", "mode": "did you mean 'max'?"}


def test_class_split_checked_element_by_element(tmp_path):
    text = (
        "_target_: mtlcli.data.SplitDigits\n"
        "class_split: {1: [0, 1], two: [2, 3], 3: [4, x]}\n"
    )
    findings = check(tmp_path, None, text)
    assert where(findings) == [(2, 26, "error", "type-mismatch"), (2, 46, "error", "type-mismatch")]
    assert findings[0].message == "class_split['two']: expected int, got key 'two' (str)"
    assert findings[1].message == "class_split[3][1]: expected int, got 'x' (str)"


def test_null_is_accepted_where_the_default_is_none(tmp_path):
    class ImplicitOptional:
        def __init__(self, size: int = None, other: int = 1):  # PEP 484's old implicit Optional
            pass

    module = sys.modules[CASES]
    module.ImplicitOptional = ImplicitOptional
    try:
        findings = check(tmp_path, None, f"_target_: {CASES}.ImplicitOptional\nsize: null\nother: null\n")
        assert where(findings) == [(3, 8, "error", "type-mismatch")]
    finally:
        del module.ImplicitOptional


def test_interpolations_are_not_type_checked_in_a_single_file(tmp_path):
    assert check(tmp_path, "trainer", "_target_: mtlcli.engine.Trainer\nmax_epochs: ${epochs}\n") == []


# -- nested targets and partial nodes -----------------------------------------------------------

def test_nested_target_nodes_are_checked_recursively(tmp_path):
    text = (
        "_target_: mtlcli.data.MTLDatasetFromCL\n"
        "cl_dataset:\n"
        "  _target_: mtlcli.data.SplitDigits\n"
        "  class_split: {1: [0, 1]}\n"
        "  validation_percentage: high\n"
        "  colour: red\n"
        "sampling_strategy: mixed\n"
        "batch_size: 64\n"
    )
    findings = check(tmp_path, "mtl_dataset", text)
    assert where(findings) == [(5, 26, "error", "type-mismatch"), (6, 3, "error", "unknown-field")]
    assert findings[0].message.startswith("cl_dataset.validation_percentage: expected float")


def test_partial_nodes_do_not_require_their_injected_arguments(tmp_path):
    assert check(tmp_path, "optimizer", "_target_: torch.optim.SGD\n_partial_: true\nlr: 0.1\n") == []
    assert check(tmp_path, "lr_scheduler",
                 "_target_: torch.optim.lr_scheduler.ReduceLROnPlateau\n_partial_: true\nmode: max\n") == []
    # a nested partial node may leave any argument to the caller
    assert check(tmp_path, None, "make:\n  _target_: mtlcli.backbones.MLP\n  _partial_: true\n  input_dim: 3\n") == []


def test_optimizer_must_be_partial(tmp_path):
    findings = check(tmp_path, "optimizer", "_target_: torch.optim.SGD\nlr: 0.1\n")
    assert where(findings) == [(1, 1, "error", "missing-partial")]


def test_special_keys(tmp_path):
    text = "_target_: torch.optim.SGD\n_partial_: 1\n_convert_: everything\nlr: 0.1\n"
    findings = check(tmp_path, "optimizer", text)
    assert where(findings) == [(1, 1, "error", "missing-partial"), (2, 12, "error", "bad-special-key"),
                               (3, 12, "error", "bad-special-key")]


# -- experiments --------------------------------------------------------------------------------

EXPERIMENT = """# @package _global_
defaults:
  - /mtl_dataset: split_digits.yaml
  - /mtl_algorithm: joint_learning.yaml
  - /backbone: mlp.yaml
  - /optimizer: adam.yaml
  - /trainer: cpu.yaml
  - _self_
expr_name: test
train_tasks: 5
eval_tasks: 5
global_seed: 1
output_dir: outputs/${expr_name}
"""


def experiment(tmp_path: Path, text: str) -> list[Finding]:
    return validate_file(write(tmp_path, "experiment", text, "exp.yaml"))


def test_a_good_experiment_is_clean(tmp_path):
    assert experiment(tmp_path, EXPERIMENT) == []


def test_defaults_entry_that_does_not_resolve(tmp_path):
    text = EXPERIMENT.replace("joint_learning.yaml", "joint_lerning.yaml").replace("/backbone:", "/backbon:")
    findings = experiment(tmp_path, text)
    assert where(findings) == [(4, 21, "error", "unknown-option"), (5, 5, "error", "unknown-option")]
    assert findings[0].hint == "did you mean 'joint_learning'?"
    assert findings[1].hint == "did you mean 'backbone'?"


def test_defaults_that_are_not_a_list_of_entries(tmp_path):
    assert where(experiment(tmp_path, "defaults: mlp\ntrain_tasks: 1\n")) == [(1, 11, "error", "bad-defaults")]
    text = EXPERIMENT.replace("  - _self_\n", "  - {a: b, c: d}\n")
    assert where(experiment(tmp_path, text)) == [(8, 5, "error", "bad-defaults")]


def test_reference_that_does_not_resolve(tmp_path):
    findings = experiment(tmp_path, EXPERIMENT.replace("${expr_name}", "${expr_nam}"))
    assert where(findings) == [(13, 13, "error", "bad-interpolation")]


def test_experiment_fields(tmp_path):
    findings = experiment(tmp_path, EXPERIMENT.replace("train_tasks: 5", "train_tasks: 0"))
    assert where(findings) == [(10, 14, "error", "bad-experiment")]


def test_components_must_fit_together(tmp_path):
    write(tmp_path, "backbone", "_target_: mtlcli.backbones.MLP\ninput_dim: 784\nhidden_dims: [8]\noutput_dim: 8\n",
          "mnist_mlp.yaml")
    text = EXPERIMENT.replace("mlp.yaml", "mnist_mlp.yaml").replace("train_tasks: 5", "train_tasks: [1, 2, 7]")
    findings = experiment(tmp_path, text.replace("eval_tasks: 5", "eval_tasks: [1, 3]"))
    assert [(Path(f.path).name, f.line, f.col, f.code) for f in findings] == [
        ("exp.yaml", 10, 14, "incompatible"),        # task 7 is not in the dataset
        ("exp.yaml", 11, 13, "incompatible"),        # task 3 is evaluated but not trained
        ("mnist_mlp.yaml", 2, 12, "incompatible"),   # 784 inputs for 8x8 digits
    ]
    assert findings[2].hint == "set input_dim: 64"


def test_what_the_algorithm_needs_from_the_experiment(tmp_path):
    name = "mtlcli_test_experiment_algorithms"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / "experiment_algorithms.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    write(tmp_path, "mtl_algorithm", f"_target_: {name}.NeedsThreeTasks\ntask_weights: {{1: 2.0, 4: 1.0}}\n",
          "needs_three.yaml")
    text = EXPERIMENT.replace("joint_learning.yaml", "needs_three.yaml").replace("train_tasks: 5", "train_tasks: [1, 2]")
    findings = experiment(tmp_path, text.replace("eval_tasks: 5", "eval_tasks: [1]"))
    assert [(Path(f.path).name, f.line, f.col, f.severity, f.code) for f in findings] == [
        ("exp.yaml", 10, 14, "error", "incompatible"),             # min_tasks = 3
        ("needs_three.yaml", 2, 24, "warning", "incompatible"),    # a weight for task 4, which is not trained
    ]
    assert "needs at least 3 tasks" in findings[0].message


def test_a_value_the_dataset_rejects(tmp_path):
    write(tmp_path, "mtl_dataset", "_target_: mtlcli.data.MTLDatasetFromCL\ncl_dataset:\n"
          "  _target_: mtlcli.data.SplitDigits\n  class_split: {1: [0, 12]}\nbatch_size: 8\n", "bad_split.yaml")
    findings = experiment(tmp_path, EXPERIMENT.replace("split_digits.yaml", "bad_split.yaml")
                          .replace("train_tasks: 5", "train_tasks: 1").replace("eval_tasks: 5", "eval_tasks: 1"))
    assert [f.code for f in findings] == ["rejected-value"]
    assert "12" in findings[0].message


def test_unfilled_value_is_an_error_in_an_experiment(tmp_path):
    findings = experiment(tmp_path, EXPERIMENT + "optimizer:\n  lr: ???\n")
    assert where(findings) == [(15, 7, "error", "unfilled-value")]


def test_check_experiment_on_a_composed_config_with_overrides():
    from mtlcli.compose import compose

    composed = compose("example_mtl_train", ["optimizer.lr=fast", "trainer.max_epochs=2"])
    findings = check_experiment(composed)
    assert [(f.path, f.code, f.message) for f in findings] == [
        ("<command line: optimizer.lr=fast>", "type-mismatch",
         "optimizer.lr: expected float | Tensor, got 'fast' (str)")]
    with pytest.raises(ConfigError, match=r"^<command line: optimizer.lr=fast>: optimizer.lr: expected float"):
        ensure_valid(composed)
    ensure_valid(compose("example_mtl_train", ["trainer.max_epochs=2"]))


# -- the whole run ------------------------------------------------------------------------------

def test_every_shipped_config_is_clean():
    from mtlcli.resources import shipped_dir

    report = validate_paths([shipped_dir("configs")])
    assert report.files_checked >= 10
    assert [str(f) for f in report.findings] == []


def test_every_code_is_documented_and_used_by_a_test():
    source = Path(__file__).read_text()
    untested = [code for code in CODES if f'"{code}"' not in source]
    assert untested == []


def test_a_yaml_link_that_is_broken_or_loops_is_a_finding_under_its_own_name(tmp_path, monkeypatch):
    # The folder used to pass as "0 files checked, no problems found", and a looping link
    # ended in a traceback from Path.resolve().
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "gone.yaml").symlink_to("nowhere.yaml")
    (tmp_path / "configs" / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "configs" / "b.yaml").symlink_to("a.yaml")
    report = validate_paths(["configs"])
    assert report.files_checked == 3
    assert [(f.path, f.code) for f in report.findings] == [
        ("configs/a.yaml", "unreadable"), ("configs/b.yaml", "unreadable"), ("configs/gone.yaml", "unreadable")]
    assert report.findings[2].message == "file not found"
    assert "symbolic links" in report.findings[0].message
