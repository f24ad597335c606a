"""Signatures: every constructor shape a config can be generated from and checked against."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pytest

from mtlcli.docstrings import parse_arg_docs, summary_line
from mtlcli.signature import (
    COMPONENT_KINDS,
    REQUIRED,
    TargetNotFound,
    locate,
    signature_of,
    type_text,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _load_cases():
    name = "mtlcli_test_signature_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FIXTURES / "signature_cases.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cases = _load_cases()


def fields_by_name(obj, **kw):
    return {f.name: f for f in signature_of(obj, **kw).fields}


def test_string_annotations_resolve_against_the_defining_module():
    # the fixture module uses `from __future__ import annotations`: every annotation is a string
    raw = inspect.signature(cases.Everything).parameters["sizes"].annotation
    assert raw == "list[int]"
    fields = fields_by_name(cases.Everything)
    assert fields["sizes"].annotation == list[int]
    assert fields["weights"].annotation == dict[str, float]
    assert fields["pair"].annotation == tuple[float, float]
    assert fields["maybe"].annotation == Optional[int]
    assert fields["mode"].annotation == Literal["min", "max"]
    assert fields["either"].annotation == Union[int, str]
    assert fields["reduction"].annotation is cases.Reduction


def test_every_annotation_shape_has_its_text_default_and_requiredness():
    fields = signature_of(cases.Everything).fields
    assert [f.name for f in fields] == ["required_int", "ratio", "maybe", "mode", "either", "sizes", "weights",
                                        "pair", "reduction", "strict", "new_style"]
    table = {f.name: (f.type_text, f.default, f.required) for f in fields}
    assert table == {
        "required_int": ("int", REQUIRED, True),
        "ratio": ("float", 1e-3, False),
        "maybe": ("int | None", None, False),
        "mode": ("Literal['min', 'max']", "min", False),
        "either": ("int | str", 3, False),
        "sizes": ("list[int]", [1, 2], False),
        "weights": ("dict[str, float]", {}, False),
        "pair": ("tuple[float, float]", (0.9, 0.999), False),
        "reduction": ("Reduction", cases.Reduction.MEAN, False),
        "strict": ("bool", True, False),
        "new_style": ("int | None", None, False),
    }


def test_keyword_only_arguments_are_settable_fields():
    fields = fields_by_name(cases.Everything)
    assert fields["strict"].kind is inspect.Parameter.KEYWORD_ONLY
    assert fields["strict"].settable


def test_numpy_docstring_of_init_gives_one_line_descriptions():
    fields = fields_by_name(cases.Everything)
    assert fields["required_int"].description == "An integer that must be given. A second line of the same sentence."
    assert fields["ratio"].description == "A small ratio."
    assert fields["mode"].description == ""


def test_kwargs_forwarded_to_the_parent_bring_the_parents_fields():
    child = signature_of(cases.Child)
    assert [(f.name, f.owner, f.default) for f in child.fields] == [
        ("scale", "Child", 1.0), ("depth", "Parent", REQUIRED), ("name", "Parent", "parent")]
    assert not child.accepts_extra  # the parent takes no **kwargs: unknown keys are errors
    descriptions = {f.name: f.description for f in child.fields}
    assert descriptions == {"scale": "the child's own multiplier.", "depth": "how many layers the parent builds.",
                            "name": "what the parent calls itself."}
    grandchild = signature_of(cases.GrandChild)
    assert [f.name for f in grandchild.fields] == ["flag", "scale", "depth", "name"]


def test_positional_only_and_star_args_are_kept_but_marked_unsettable():
    fields = fields_by_name(cases.Positional)
    assert list(fields) == ["first", "second", "rest", "last"]
    assert not fields["first"].settable and fields["first"].required
    assert "positional-only" in fields["first"].unsettable_reason
    assert not fields["rest"].settable and not fields["rest"].required
    assert "*args" in fields["rest"].unsettable_reason
    assert fields["second"].settable and fields["last"].settable


def test_an_unresolvable_string_annotation_becomes_any_with_a_note():
    fields = fields_by_name(cases.Unresolvable)
    assert fields["thing"].annotation is Any
    assert fields["thing"].type_text == "NoSuchType"
    assert "NoSuchType" in fields["thing"].note
    assert fields["good"].annotation is int and fields["good"].note == ""


def test_clarena_style_docstrings():
    fields = fields_by_name(cases.CLArenaStyle)
    assert fields["alpha"].description == "the weight of the first term."
    assert fields["beta"].description == "the name."


def test_class_docstring_and_init_docstring_are_merged():
    class Documented:
        """Summary line.

        Args:
            a: from the class.
            b: also from the class.
        """

        def __init__(self, a: int = 1, b: int = 2, c: int = 3):
            """Build it.

            Args:
                b: from __init__, which wins.
                c: only in __init__.
            """

    fields = fields_by_name(Documented)
    assert {n: f.description for n, f in fields.items()} == {
        "a": "from the class.", "b": "from __init__, which wins.", "c": "only in __init__."}
    assert signature_of(Documented).summary == "Summary line."


def test_google_docstring_with_types_and_continuations():
    doc = """Do things.

    Args:
        lr (float, optional): learning rate
            (default: 1e-3). Second sentence.
        betas (Tuple[float, float]): coefficients.

            A second paragraph that is not part of the one-liner.
        **kwargs: passed on.

    Returns:
        nothing: really.
    """
    assert parse_arg_docs(doc) == {"lr": "learning rate (default: 1e-3). Second sentence.",
                                   "betas": "coefficients.", "kwargs": "passed on."}
    assert summary_line(doc) == "Do things."


def test_injected_arguments_are_excluded_per_kind():
    from mtlcli.algorithms import JointLearning

    assert COMPONENT_KINDS["mtl_algorithm"].injected == ("backbone", "heads")
    assert signature_of(JointLearning, kind="mtl_algorithm").fields == ()
    without_kind = signature_of(JointLearning)
    assert [f.name for f in without_kind.fields] == ["backbone", "heads"]


def test_torch_optimizer_signature_works_through_inspect():
    import torch

    sig = signature_of(torch.optim.Adam, kind="optimizer")
    fields = {f.name: f for f in sig.fields}
    assert "params" not in fields and sig.injected == ("params",)
    assert fields["lr"].default == 1e-3 and "learning rate" in fields["lr"].description
    assert fields["betas"].default == (0.9, 0.999)
    assert fields["foreach"].kind is inspect.Parameter.KEYWORD_ONLY
    plateau = {f.name: f for f in signature_of(torch.optim.lr_scheduler.ReduceLROnPlateau, kind="lr_scheduler").fields}
    assert plateau["mode"].annotation == Literal["min", "max"]  # a string annotation in torch's source


def test_a_module_without_its_own_init_has_no_fields():
    from torch import nn

    class Plain(nn.Module):
        def forward(self, x):
            return x

    sig = signature_of(Plain)
    assert sig.fields == () and not sig.accepts_extra


def test_a_function_with_kwargs_accepts_extra_keys():
    def build(width: int = 3, **options):
        return width, options

    sig = signature_of(build)
    assert [f.name for f in sig.fields] == ["width"] and sig.accepts_extra


@pytest.mark.parametrize(
    "annotation, text",
    [(Optional[list[int]], "list[int] | None"), (dict[int, list[int]], "dict[int, list[int]]"),
     (tuple[int, ...], "tuple[int, ...]"), (Literal[1, "a"], "Literal[1, 'a']"), (Any, "Any"),
     (Union[int, float, None], "int | float | None"), (type(None), "None")],
)
def test_type_text(annotation, text):
    assert type_text(annotation) == text


def test_locate_finds_classes_and_explains_failures():
    from mtlcli.algorithms import JointLearning

    assert locate("mtlcli.algorithms.JointLearning") is JointLearning
    with pytest.raises(TargetNotFound) as missing_attr:
        locate("mtlcli.algorithms.JointLearnin")
    assert "mtlcli.algorithms.JointLearning" in missing_attr.value.candidates
    with pytest.raises(TargetNotFound, match="no module named 'no_such_pkg'"):
        locate("no_such_pkg.Thing")
    with pytest.raises(TargetNotFound, match="not a dotted path"):
        locate("mtlcli..x")
