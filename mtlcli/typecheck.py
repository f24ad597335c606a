"""Does a value read from YAML fit a constructor annotation?

YAML has fewer types than Python, so the rules are YAML's view of the annotation:
an int is accepted for a float (``lr: 1``) but a bool is not accepted for an int
(``true`` is almost always a slip); a list is accepted for a tuple (YAML has no
tuples); an ``Enum`` is written by its value; containers are checked element by
element, so a mistake deep inside ``class_split`` is reported at that element.
Anything the checker cannot judge (a ``${...}`` interpolation, a nested
``_target_`` node, an annotation it does not know) is accepted: a false alarm
costs more than a miss that the constructor will catch anyway.
"""

from __future__ import annotations

import collections.abc as cabc
import enum
import os
import pathlib
import types
import typing
from dataclasses import dataclass
from typing import Any

from mtlcli.signature import strip_annotated, type_text

@dataclass(frozen=True)
class Mismatch:
    """A value (or an element or key inside it) that does not fit its annotation."""

    path: tuple[Any, ...]       # keys/indices from the checked value down to the offending one
    expected: str               # the annotation, as text ("int", "one of 'min', 'max'")
    value: Any
    on_key: bool = False        # the offending thing is a mapping key, not its value
    choices: tuple[Any, ...] = ()  # the allowed values, for Literal and Enum (did-you-mean)

    @property
    def message(self) -> str:
        where = "".join(f"[{p!r}]" for p in self.path)
        what = f"key {describe(self.value)}" if self.on_key else describe(self.value)
        prefix = f"{where}: " if where else ""
        return f"{prefix}expected {self.expected}, got {what}"


def describe(value: Any) -> str:
    """A value the way the user wrote it in YAML, with its type."""
    if value is None:
        return "null"
    if _is_bool(value):
        return "true (bool)" if value else "false (bool)"
    if isinstance(value, str):
        return f"{value!r} (str)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    kind = "int" if isinstance(value, int) else "float" if isinstance(value, float) else type(value).__name__
    return f"{value!r} ({kind})"


def is_deferred(value: Any) -> bool:
    """Values only known later: ``${...}`` interpolations, ``???`` (set by an override) and
    nested ``_target_`` nodes (their own signature is checked instead)."""
    if isinstance(value, str):
        return "${" in value or value == "???"
    return isinstance(value, dict) and "_target_" in value


def check_value(value: Any, annotation: Any, path: tuple[Any, ...] = ()) -> list[Mismatch]:
    """Every place where ``value`` does not fit ``annotation`` (empty when it fits)."""
    annotation = strip_annotated(annotation)
    if is_deferred(value) or annotation is Any or annotation is object:
        return []
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return [] if value is None else [Mismatch(path, "null", value)]
    if origin is typing.Union or origin is types.UnionType:
        return _check_union(value, annotation, args, path)
    if origin is typing.Literal:
        if any(_same_literal(value, choice) for choice in args):
            return []
        choices = tuple(c.value if isinstance(c, enum.Enum) else c for c in args)
        return [Mismatch(path, _one_of(choices), value, choices=choices)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = tuple(member.value for member in annotation)
        if isinstance(value, annotation) or any(_same_literal(value, c) for c in choices):
            return []
        return [Mismatch(path, f"{annotation.__name__} value, {_one_of(choices)}", value, choices=choices)]
    if annotation is bool:
        return [] if _is_bool(value) else [Mismatch(path, "bool", value)]
    if annotation is int:
        return [] if _is_int(value) else [Mismatch(path, "int", value)]
    if annotation is float:
        return [] if _is_number(value) else [Mismatch(path, "float", value)]
    if annotation is complex:
        return [] if _is_number(value) else [Mismatch(path, "complex", value)]
    if annotation is str:
        return [] if isinstance(value, str) else [Mismatch(path, "str", value)]
    if annotation in (pathlib.Path, pathlib.PurePath, os.PathLike) or origin is os.PathLike:
        return [] if isinstance(value, (str, os.PathLike)) else [Mismatch(path, "a path (str)", value)]
    container = origin or annotation
    if container is tuple:
        return _check_tuple(value, annotation, args, path)
    if container in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return [Mismatch(path, type_text(annotation) or "list", value)]
        item = args[0] if args else Any
        return [m for i, v in enumerate(value) for m in check_value(v, item, path + (i,))]
    if container in _MAPPINGS:
        if not isinstance(value, dict):
            return [Mismatch(path, type_text(annotation) or "mapping", value)]
        key_type, item_type = args if len(args) == 2 else (Any, Any)
        found: list[Mismatch] = []
        for key, item in value.items():
            found += [Mismatch(path + (key,), m.expected, key, on_key=True, choices=m.choices)
                      for m in check_value(key, key_type)]
            found += check_value(item, item_type, path + (key,))
        return found
    if hasattr(annotation, "__supertype__"):  # typing.NewType
        return check_value(value, annotation.__supertype__, path)
    if isinstance(annotation, type) and annotation.__module__ not in ("typing", "collections.abc"):
        if isinstance(value, annotation) or (annotation is float and _is_int(value)):
            return []
        return [Mismatch(path, type_text(annotation), value)]
    return []  # TypeVar, ForwardRef, Callable, Protocol, ...: not judged


_SEQUENCES = {list, set, frozenset, cabc.Sequence, cabc.MutableSequence, cabc.Iterable,
              cabc.Collection, cabc.Set, cabc.MutableSet, typing.List, typing.Sequence}
_MAPPINGS = {dict, cabc.Mapping, cabc.MutableMapping, typing.Dict, typing.Mapping}


def _check_union(value: Any, annotation: Any, members: tuple[Any, ...], path: tuple[Any, ...]) -> list[Mismatch]:
    attempts = [check_value(value, member, path) for member in members]
    if any(not found for found in attempts):
        return []
    # When exactly one member has the value's shape (a list for ``list[int] | None``),
    # its element-level findings say more than "expected list[int] | None".
    shaped = [found for member, found in zip(members, attempts) if _same_shape(value, member)]
    if len(shaped) == 1 and all(m.path != path for m in shaped[0]):
        return shaped[0]
    return [Mismatch(path, type_text(annotation), value)]


def _same_shape(value: Any, annotation: Any) -> bool:
    container = typing.get_origin(annotation) or annotation
    if isinstance(value, dict):
        return container in _MAPPINGS
    if isinstance(value, (list, tuple)):
        return container is tuple or container in _SEQUENCES
    return False


def _check_tuple(value: Any, annotation: Any, args: tuple[Any, ...], path: tuple[Any, ...]) -> list[Mismatch]:
    expected = type_text(annotation) or "tuple"
    if not isinstance(value, (list, tuple)):
        return [Mismatch(path, f"{expected} (a list)", value)]
    if not args or args == ((),):
        return [] if not args or not value else [Mismatch(path, "an empty list", value)]
    if len(args) == 2 and args[1] is Ellipsis:
        return [m for i, v in enumerate(value) for m in check_value(v, args[0], path + (i,))]
    if len(value) != len(args):
        return [Mismatch(path, f"{expected} (a list of {len(args)})", value)]
    return [m for i, (v, a) in enumerate(zip(value, args)) for m in check_value(v, a, path + (i,))]


def _one_of(choices: tuple[Any, ...]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


def _is_bool(value: Any) -> bool:
    # ruamel gives an anchored boolean as ScalarBoolean, an int subclass
    return isinstance(value, bool) or type(value).__name__ == "ScalarBoolean"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not _is_bool(value)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _same_literal(value: Any, choice: Any) -> bool:
    if isinstance(choice, enum.Enum):
        return value is choice or _same_literal(value, choice.value)
    if _is_bool(value) or _is_bool(choice):  # Literal[1] does not accept true
        return _is_bool(value) and _is_bool(choice) and bool(value) == bool(choice)
    if isinstance(choice, str):
        return isinstance(value, str) and value == choice
    if _is_number(choice):
        return _is_number(value) and value == choice
    return value == choice
