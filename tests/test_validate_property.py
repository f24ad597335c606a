"""Property: for any class, the config new-algorithm writes loads back to its defaults and validates clean."""

from __future__ import annotations

import enum
import itertools
import sys
import types
from typing import Literal, Optional, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtlcli.scaffold import render_config
from mtlcli.signature import signature_of
from mtlcli.validate import validate_text
from mtlcli.yamlio import load_yaml_text, to_plain
from mtlcli.yamlvalues import plain_data

yaml = pytest.importorskip("yaml")


class Mode(enum.Enum):
    FAST = "fast"
    SAFE = "safe: really"
    OFF = 0


finite = st.floats(allow_nan=False, allow_infinity=False)

# annotation source text -> strategy for a default of that type
ANNOTATIONS = {
    "int": st.integers(),
    "float": finite | st.integers(),
    "bool": st.booleans(),
    "str": st.text(max_size=12),
    "Optional[int]": st.none() | st.integers(),
    "list[int]": st.lists(st.integers(), max_size=3),
    "dict[str, float]": st.dictionaries(st.text(max_size=4), finite, max_size=3),
    "dict[int, list[int]]": st.dictionaries(st.integers(1, 9), st.lists(st.integers(0, 9), max_size=2), max_size=3),
    "tuple[int, float]": st.tuples(st.integers(), finite),
    "tuple[str, ...]": st.lists(st.text(max_size=4), max_size=3).map(tuple),
    "Literal['min', 'a: b', 'yes', 3]": st.sampled_from(["min", "a: b", "yes", 3]),
    "Union[int, str]": st.integers() | st.text(max_size=6),
    "float | None": st.none() | finite,
    "Mode": st.sampled_from(list(Mode)),
}

field_spec = st.tuples(
    st.sampled_from(sorted(ANNOTATIONS)),
    st.booleans(),  # keyword-only?
    st.booleans(),  # annotation written as a string (as with `from __future__ import annotations`)
).flatmap(lambda spec: st.tuples(st.just(spec[0]), st.just(spec[1]), st.just(spec[2]), ANNOTATIONS[spec[0]]))

_counter = itertools.count()


def make_class(fields):
    """A class in a module of its own whose __init__ has exactly these fields."""
    module_name = f"mtlcli_generated_{next(_counter)}"
    module = types.ModuleType(module_name)
    module.__dict__.update(Optional=Optional, Union=Union, Literal=Literal, Mode=Mode, DEFAULTS={})
    positional, keyword_only, docs = [], [], []
    for index, (annotation, kw_only, as_string, default) in enumerate(fields):
        name = f"field_{index}"
        module.DEFAULTS[name] = default
        written = repr(annotation) if as_string else annotation
        (keyword_only if kw_only else positional).append(f"{name}: {written} = DEFAULTS[{name!r}]")
        docs.append(f"            {name}: the field number {index}.")
    params = ", ".join(["self", *positional, *(["*", *keyword_only] if keyword_only else [])])
    source = (
        "class Generated:\n"
        '    """A generated component.\n\n        Args:\n' + "\n".join(docs) + '\n    """\n\n'
        f"    def __init__({params}):\n        pass\n"
    )
    exec(compile(source, f"<{module_name}>", "exec"), module.__dict__)
    module.Generated.__module__ = module_name
    sys.modules[module_name] = module
    return module.Generated, f"{module_name}.Generated"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(field_spec, min_size=0, max_size=6))
def test_generated_config_loads_back_and_validates(fields):
    cls, target = make_class(fields)
    try:
        sig = signature_of(cls, target=target)
        order = [i for i, f in enumerate(fields) if not f[1]] + [i for i, f in enumerate(fields) if f[1]]
        assert [f.description for f in sig.fields] == [f"the field number {i}." for i in order]
        text = render_config(sig, kind=None)
        expected = {"_target_": target, **{f"field_{i}": plain_data(fields[i][3]) for i in order}}
        ours = to_plain(load_yaml_text(text, "<generated>"))
        assert ours == expected and list(ours) == list(expected)
        assert yaml.safe_load(text) == expected
        assert all(type(ours[k]) is type(v) for k, v in expected.items())  # 1.0 stays a float, '1' a str
        assert [str(f) for f in validate_text(text, path="generated.yaml")] == []
    finally:
        sys.modules.pop(target.rpartition(".")[0], None)
