"""A callable's constructor arguments as ordered config fields.

Both ``new-algorithm`` (generate a config) and ``validate`` (check one) work from
the same :class:`Signature`, so what one writes the other accepts. The rule it
implements, from the CLArena docs: a component's config fields are exactly the
constructor arguments of its ``_target_``, minus the arguments the trainer
injects (:data:`COMPONENT_KINDS`, the one place they are listed).

Cases handled on purpose: keyword-only arguments, string annotations and
``from __future__ import annotations`` (resolved against the defining module),
a subclass ``__init__(self, ..., **kwargs)`` that forwards to its parent (the
parent's fields are included by walking the MRO), and parameters a YAML mapping
cannot set (positional-only, ``*args``), which are kept but marked.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from mtlcli.docstrings import parse_arg_docs, summary_line


class _Required:
    """Sentinel default of a required field (Hydra writes it ``???``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class ComponentKind:
    """What the trainer does with one config group's object."""

    group: str
    injected: tuple[str, ...] = ()  # arguments the trainer supplies; never in a config
    partial: bool = False           # injected by calling a ``_partial_: true`` node
    base: str | None = None         # dotted path of the class a target must subclass


# The one list of injected arguments, per kind of component (config group).
COMPONENT_KINDS: dict[str, ComponentKind] = {
    kind.group: kind
    for kind in (
        ComponentKind("mtl_algorithm", ("backbone", "heads"), base="mtlcli.algorithms.base.MTLAlgorithm"),
        ComponentKind("optimizer", ("params",), partial=True),
        ComponentKind("lr_scheduler", ("optimizer",), partial=True),
        ComponentKind("backbone"),
        ComponentKind("mtl_dataset"),
        ComponentKind("trainer"),
    )
}

# Keys of a ``_target_`` node that are instructions to the instantiator, not arguments.
HYDRA_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")

# Bases whose ``__init__(*args, **kwargs)`` takes nothing a config could set: the
# walk up the MRO through ``**kwargs`` stops at them.
_OPAQUE_BASES = {"builtins.object", "torch.nn.modules.module.Module", "typing.Generic"}


@dataclass(frozen=True)
class Field:
    """One constructor argument as a config field."""

    name: str
    annotation: Any             # resolved typing object; typing.Any when unannotated or unresolvable
    type_text: str              # how the annotation reads in a comment ('' when unannotated)
    default: Any = REQUIRED     # REQUIRED when the argument has no default
    description: str = ""       # one line from the docstring
    kind: inspect._ParameterKind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    owner: str = ""             # qualified name of the class (or function) that declares it
    note: str = ""              # why the annotation could not be resolved, if it could not

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def settable(self) -> bool:
        """A YAML mapping can set it by name (not positional-only, not ``*args``)."""
        return self.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)

    @property
    def unsettable_reason(self) -> str:
        if self.kind is inspect.Parameter.POSITIONAL_ONLY:
            return "positional-only: a YAML mapping cannot set it by name; pass it in _args_"
        if self.kind is inspect.Parameter.VAR_POSITIONAL:
            return "*args: a YAML mapping cannot set it by name; pass the values in _args_"
        return ""


@dataclass(frozen=True)
class Signature:
    """The config fields of one ``_target_``, in constructor order."""

    target: str                 # dotted path as written in ``_target_``
    obj: Any                    # the class or function
    summary: str                # first paragraph of its docstring, one line
    fields: tuple[Field, ...]   # every parameter except the injected ones and **kwargs
    injected: tuple[str, ...] = ()
    accepts_extra: bool = False  # a **kwargs that takes any keyword (not forwarded to a known parent)
    _by_name: dict[str, Field] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})

    def get(self, name: str) -> Field | None:
        return self._by_name.get(name)

    @property
    def settable(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.settable)

    @property
    def name(self) -> str:
        return getattr(self.obj, "__name__", self.target.rpartition(".")[2])


def signature_of(obj: Any, *, kind: str | None = None, target: str | None = None) -> Signature:
    """The config fields of a class (its ``__init__``, following ``**kwargs`` up the MRO)
    or of a function. ``kind`` (a config group) decides the injected arguments to drop."""
    injected = COMPONENT_KINDS[kind].injected if kind in COMPONENT_KINDS else ()
    target = target or f"{obj.__module__}.{obj.__qualname__}"
    fields: list[Field] = []
    seen: set[str] = set()
    accepts_extra = False
    if inspect.isclass(obj):
        docs = _class_docs(obj)
        summary = summary_line(obj.__dict__.get("__doc__"))
        chain = _init_chain(obj)
    else:
        docs = parse_arg_docs(getattr(obj, "__doc__", None))
        summary = summary_line(getattr(obj, "__doc__", None))
        chain = [(obj, obj, False)]
    for owner, func, bound in chain:
        params = list(_parameters(func, bound))
        hints = _resolve_hints(func, params)
        owner_docs = {**_class_docs(owner), **docs} if inspect.isclass(owner) else docs
        accepts_extra = False
        for param in params:
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                accepts_extra = True
                continue
            if param.name in seen or param.name in injected:
                continue
            if owner is not chain[0][0] and param.kind is inspect.Parameter.VAR_POSITIONAL:
                continue  # a parent's *args is not reachable through the child's **kwargs
            seen.add(param.name)
            annotation, text, note = hints[param.name]
            fields.append(
                Field(
                    name=param.name,
                    annotation=annotation,
                    type_text=text,
                    default=_default(param),
                    description=owner_docs.get(param.name, ""),
                    kind=param.kind,
                    owner=getattr(owner, "__qualname__", str(owner)),
                    note=note,
                )
            )
    return Signature(target=target, obj=obj, summary=summary, fields=tuple(fields),
                     injected=tuple(injected), accepts_extra=accepts_extra)


def _default(param: inspect.Parameter) -> Any:
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        return ()
    return REQUIRED if param.default is inspect.Parameter.empty else param.default


def _class_docs(cls: type) -> dict[str, str]:
    """Argument docs of a class: its ``__init__`` docstring first, then its own docstring."""
    init = cls.__dict__.get("__init__")
    docs = parse_arg_docs(getattr(init, "__doc__", None))
    for name, text in parse_arg_docs(cls.__dict__.get("__doc__")).items():
        docs.setdefault(name, text)
    return docs


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _init_chain(cls: type) -> list[tuple[type, Any, bool]]:
    """(owner class, __init__, bound) for the class's __init__ and, while an __init__
    takes ``**kwargs``, the next one up the MRO: a forwarding subclass shows its
    parent's fields too."""
    chain: list[tuple[type, Any, bool]] = []
    for klass in cls.__mro__:
        if _qualified(klass) in _OPAQUE_BASES:
            if not chain and klass is not object:
                return []  # e.g. an nn.Module subclass without an __init__ of its own
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        chain.append((klass, init, True))
        params = inspect.signature(init).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    if not chain:  # no __init__ of its own anywhere: __new__, a metaclass, or nothing at all
        chain.append((cls, cls, False))
    return chain


def _parameters(func: Any, bound: bool) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins without a text signature
        return []
    return params[1:] if bound and params else params


def _resolve_hints(func: Any, params: list[inspect.Parameter]) -> dict[str, tuple[Any, str, str]]:
    """Name -> (annotation, display text, note). String annotations (``from __future__
    import annotations``) are evaluated in the defining module; one that does not
    resolve becomes ``Any`` with its text kept and a note."""
    hints = None
    if not inspect.isclass(func):  # a class's own hints are its attributes, not its arguments
        try:
            hints = typing.get_type_hints(func)
        except Exception:
            pass
    globalns = getattr(inspect.unwrap(func), "__globals__", None)
    if globalns is None:
        module = sys.modules.get(getattr(func, "__module__", ""), None)
        globalns = vars(module) if module else {}
    resolved: dict[str, tuple[Any, str, str]] = {}
    for param in params:
        raw = param.annotation
        if raw is inspect.Parameter.empty:
            resolved[param.name] = (Any, "", "")
            continue
        if hints is not None and param.name in hints:
            annotation = hints[param.name]
        elif isinstance(raw, str):
            try:
                annotation = eval(raw, dict(globalns))  # noqa: S307 - the module's own annotation
            except Exception as err:
                resolved[param.name] = (Any, raw, f"annotation {raw!r} could not be resolved ({type(err).__name__})")
                continue
        else:
            annotation = raw
        resolved[param.name] = (annotation, type_text(annotation), "")
    return resolved


def strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def type_text(annotation: Any) -> str:
    """An annotation as a short, Python-like string: ``list[int]``, ``float | None``."""
    annotation = strip_annotated(annotation)
    if annotation is inspect.Parameter.empty:
        return ""
    if annotation is Any:
        return "Any"
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, typing.ForwardRef):
        return annotation.__forward_arg__
    if isinstance(annotation, typing.TypeVar):
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        text = " | ".join(type_text(a) for a in members)
        return f"{text} | None" if len(members) < len(args) else text
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a.value if isinstance(a, enum.Enum) else a) for a in args) + "]"
    if origin is not None:
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        if origin.__module__ == "collections.abc" or origin.__module__ == "typing":
            name = getattr(origin, "__name__", name)
        if not args:
            return name
        if name == "Callable" and len(args) == 2 and isinstance(args[0], list):
            return f"Callable[[{', '.join(type_text(a) for a in args[0])}], {type_text(args[1])}]"
        parts = ["..." if a is Ellipsis else "[" + ", ".join(type_text(x) for x in a) + "]" if isinstance(a, list)
                 else type_text(a) for a in args]
        return f"{name}[{', '.join(parts)}]"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


# -- locating a _target_ ------------------------------------------------------

class TargetNotFound(Exception):
    """A dotted path that does not name an importable object."""

    def __init__(self, target: str, reason: str, candidates: list[str]):
        self.target = target
        self.reason = reason
        self.candidates = candidates
        super().__init__(f"{target}: {reason}")


def locate(target: str) -> Any:
    """The object a dotted path names (``pkg.module.Class`` or ``pkg.module.Class.attr``).

    The current directory is importable, as it is for ``python -m``, so a project's
    own ``mypkg.algos.MyAlgo`` resolves when mtlcli runs from the project folder.
    Raises :class:`TargetNotFound` with the names that exist where the lookup failed.
    """
    if not isinstance(target, str) or not target.strip():
        raise TargetNotFound(str(target), "not a dotted path", [])
    parts = target.strip().split(".")
    if any(not p.isidentifier() for p in parts):
        raise TargetNotFound(target, "not a dotted path of Python names", [])
    _ensure_cwd_importable()
    module = None
    index = len(parts)
    error: Exception | None = None
    while index > 0:
        name = ".".join(parts[:index])
        try:
            module = importlib.import_module(name)
            break
        except ModuleNotFoundError as err:
            if err.name and not name.startswith(err.name) and not err.name.startswith(name):
                # the module exists but one of *its* imports is missing
                raise TargetNotFound(target, f"importing {name} failed: {err}", []) from err
            error = err
            index -= 1
        except Exception as err:  # the module itself is broken
            raise TargetNotFound(target, f"importing {name} failed: {type(err).__name__}: {err}", []) from err
    if module is None:
        raise TargetNotFound(target, f"no module named {parts[0]!r}", []) from error
    obj: Any = module
    for depth in range(index, len(parts)):
        try:
            obj = getattr(obj, parts[depth])
        except AttributeError:
            where = ".".join(parts[:depth])
            candidates = [f"{where}.{n}" for n in dir(obj) if not n.startswith("_")]
            if inspect.ismodule(obj) and depth == index:
                candidates += _submodules(obj, where)
            kind = "module" if inspect.ismodule(obj) else "object"
            raise TargetNotFound(target, f"{kind} {where} has no attribute {parts[depth]!r}", candidates) from None
    return obj


def _submodules(module: types.ModuleType, where: str) -> list[str]:
    import pkgutil

    paths = getattr(module, "__path__", None)
    if not paths:
        return []
    return [f"{where}.{info.name}" for info in pkgutil.iter_modules(paths)]


def _ensure_cwd_importable() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
