"""YAML loading with positions, one-line errors, round-trip dumping, atomic writes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlcli.errors import ConfigError, MtlcliError, Origin
from mtlcli.yamlio import (
    atomic_write_text,
    dump_yaml,
    key_origin,
    load_yaml,
    load_yaml_text,
    node_origin,
    to_plain,
    value_origin,
)


def write(tmp_path, text, name="c.yaml", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def error_of(path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert "\n" not in str(info.value)
    return info.value


def test_positions_of_keys_and_values(tmp_path):
    path = write(tmp_path, "# header\nmodel:\n  depth: 3\n  widths: [8, 16]\nnames:\n  - a\n  - b\n")
    node = load_yaml(path)
    p = str(path)
    assert key_origin(p, node, "model") == Origin(p, 2, 1)
    assert key_origin(p, node["model"], "depth") == Origin(p, 3, 3)
    assert value_origin(p, node["model"], "depth") == Origin(p, 3, 10)
    assert value_origin(p, node["model"]["widths"], 1) == Origin(p, 4, 15)
    assert value_origin(p, node["names"], 1) == Origin(p, 7, 5)
    assert node_origin(p, node["model"]) == Origin(p, 3, 3)
    assert node_origin(p, 5) == Origin(p)


def test_scalars_read_as_hydra_reads_them(tmp_path):
    # YAML 1.1, as OmegaConf: yes/on are booleans, 010 is octal, 1e3 a float, dates stay text.
    # ``y``/``n`` are strings for PyYAML (hence OmegaConf), unlike ruamel's own YAML 1.1.
    node = load_yaml(write(tmp_path, "a: yes\nb: 010\nc: 1e3\nd: 2020-01-01\ne: ~\nf: 0.5\ng: {1: [0, 1]}\ny: n\n"))
    plain = to_plain(node)
    assert plain == {"a": True, "b": 8, "c": 1000.0, "d": "2020-01-01", "e": None, "f": 0.5, "g": {1: [0, 1]}, "y": "n"}
    assert [type(v) for v in plain.values()] == [bool, int, float, str, type(None), float, dict, str]


@pytest.mark.parametrize(
    ("text", "line", "col", "words"),
    [
        ("a:\n\tb: 1\n", 2, 1, "tab character"),
        ("a: 1\na: 2\n", 2, 1, 'duplicate key "a"'),
        ("outer:\n  x: 1\n  x: 2\n", 3, 3, 'duplicate key "x"'),
        ("a: 'unclosed\n", 2, 1, "quoted scalar started at 1:4"),
        ("a: 1\n b: 2\n", 2, 3, "unexpected ':'"),
        ("a: [1, 2\n", 2, 1, "flow sequence started at 1:4"),
    ],
)
def test_syntax_errors_name_the_position(tmp_path, text, line, col, words):
    path = write(tmp_path, text)
    err = error_of(path)
    assert err.origin == Origin(str(path), line, col)
    assert words in err.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    err = error_of(write(tmp_path, text))
    assert err.message == "empty file"


def test_non_utf8_bytes_position(tmp_path):
    path = write(tmp_path, "a: 1\nname: caf\xe9\n".encode("latin-1"), mode="wb")
    err = error_of(path)
    assert err.origin == Origin(str(path), 2, 10)
    assert "UTF-8" in err.message and "0xe9" in err.message


def test_non_utf8_after_multibyte_character_counts_characters(tmp_path):
    path = write(tmp_path, "k: \u00e9\u00e9\xff\n".encode("utf-8").replace(b"\xc3\xbf", b"\xff"), mode="wb")
    assert error_of(path).origin == Origin(str(path), 1, 6)


def test_missing_file(tmp_path):
    err = error_of(tmp_path / "nope.yaml")
    assert err.message == "file not found"


def test_error_text_is_path_line_col(tmp_path):
    path = write(tmp_path, "a: 1\na: 2\n")
    assert str(error_of(path)).startswith(f"{path}:2:1: duplicate key")


def test_dump_round_trips_awkward_values():
    data = {
        "yes_string": "yes",
        "octal_looking": "010",
        "sexagesimal_looking": "1:30",
        "null_string": "null",
        "none": None,
        "empty": "",
        "interp": "outputs/${expr_name}/${misc.timestamp}",
        "colon": "a: b",
        "class_split": {1: [0, 1], 2: [2, 3]},
        "nested": [{"x": 1.5e-5}, [], {}],
        "flag": False,
        "multi": "two\nlines",
    }
    text = dump_yaml(data)
    assert to_plain(load_yaml_text(text, "<dump>")) == data
    assert "class_split:\n  1: [0, 1]\n" in text  # leaf collections stay inline


plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=True, width=64),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)
plain_data = st.recursive(
    plain_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(st.characters(whitelist_categories=("Ll",)), min_size=1, max_size=6), st.integers(0, 9)), children, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(st.characters(whitelist_categories=("Ll", "Lu")), min_size=1, max_size=8), plain_data, min_size=1, max_size=5))
def test_dump_then_load_gives_equal_data(data):
    assert to_plain(load_yaml_text(dump_yaml(data), "<dump>")) == data


def test_atomic_write_creates_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "sub" / "config.yaml"
    atomic_write_text(target, "a: 1\n", overwrite=False)
    assert target.read_text() == "a: 1\n"
    with pytest.raises(MtlcliError, match="already exists"):
        atomic_write_text(target, "a: 2\n", overwrite=False)
    assert target.read_text() == "a: 1\n"
    atomic_write_text(target, "a: 2\n", overwrite=True)
    assert target.read_text() == "a: 2\n"
    assert sorted(os.listdir(target.parent)) == ["config.yaml"]  # no temporary file left behind


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "bad \ud800 surrogate", overwrite=True)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_atomic_write_keeps_umask_permissions(tmp_path):
    target = tmp_path / "f.txt"
    old = os.umask(0o022)
    try:
        atomic_write_text(target, "x", overwrite=False)
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
