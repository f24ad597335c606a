"""Build objects from config nodes: ``_target_``, ``_partial_``, ``_args_``, nested targets.

The CLArena/Hydra convention: a mapping with ``_target_: pkg.module.Name`` becomes
``Name(**other_keys)``. Nested ``_target_`` nodes are built first (depth first), so a
dataset can receive the source dataset it wraps. ``_partial_: true`` returns a
``functools.partial`` that the trainer completes (the optimizer gets the model's
parameters, the scheduler the optimizer). Mappings and lists without ``_target_``
pass through as plain containers, keys unchanged (``class_split`` keeps its int keys).

Every mistake a config can make here — a target that cannot be imported, an argument
the class does not take, a value the constructor rejects — is a :class:`ConfigError`
at the position of the ``_target_`` (or of the offending key) when origins are given.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import re
from collections.abc import Mapping
from typing import Any

from mtlcli.errors import ConfigError, MtlcliError, Origin

__all__ = ["instantiate", "locate"]

_RESERVED = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def instantiate(config: Any, *args: Any, origins: Any = None, path: str = "", **kwargs: Any) -> Any:
    """Build the object a config node describes.

    ``args`` replace the node's ``_args_``; ``kwargs`` are added to (and win over) its
    keys — the trainer passes ``backbone=`` and ``heads=`` this way. ``origins`` is
    anything with an ``origin(dotted_key)`` method (a :class:`mtlcli.compose.Composed`)
    or a mapping of dotted keys to :class:`Origin`; ``path`` is the dotted key of
    ``config`` inside it (``"mtl_algorithm"``), so errors can name file, line and column.
    """
    return _Builder(origins).build(config, path, args, kwargs)


class _Builder:
    def __init__(self, origins: Any):
        self.origins = origins

    def origin(self, key: str, of_key: bool = False) -> Origin | None:
        if self.origins is None:
            return None
        try:
            if isinstance(self.origins, Mapping):
                return self.origins.get(key)
            if of_key and hasattr(self.origins, "key_origin"):
                return self.origins.key_origin(key)
            return self.origins.origin(key)
        except KeyError:
            return None

    def build(self, node: Any, path: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        if isinstance(node, Mapping) and "_target_" in node:
            return self.build_target(node, path, args, kwargs or {})
        if args or kwargs:
            raise ConfigError(f"{path or 'config'}: cannot pass arguments to a node without _target_", self.origin(path))
        if isinstance(node, Mapping):
            return {key: self.build(value, _join(path, key)) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [self.build(item, _join(path, index)) for index, item in enumerate(node)]
        return node

    def build_target(self, node: Mapping, path: str, args: tuple, kwargs: dict) -> Any:
        where = self.origin(_join(path, "_target_"))
        label = f"{path}: " if path and where is None else ""
        target = node["_target_"]
        name = target if isinstance(target, str) else getattr(target, "__qualname__", repr(target))
        if isinstance(target, str):
            target = locate(target, where, label)
        if not callable(target):
            raise ConfigError(f"{label}_target_ '{name}' is not a class or function (it is {type(target).__name__})", where)
        recursive = node.get("_recursive_", True)
        positional = list(args) if args else list(node.get("_args_") or [])
        if not isinstance(positional, list):
            raise ConfigError(f"{label}_args_ of '{name}' must be a list", self.origin(_join(path, "_args_")))
        if recursive:
            positional = [self.build(item, _join(_join(path, "_args_"), index)) for index, item in enumerate(positional)]
        named = {key: value for key, value in node.items() if key not in _RESERVED}
        if recursive:
            named = {key: self.build(value, _join(path, key)) for key, value in named.items()}
        named.update(kwargs)
        partial = node.get("_partial_", False)
        self.check_arguments(target, name, positional, named, path, partial, where, label, injected=set(kwargs))
        if partial:
            return _CheckedPartial(target, *positional, **named)._bind_errors(self, name, path, named, where, label)
        return self.call(target, positional, named, name, path, where, label)

    def call(self, target: Any, args: Any, kwargs: dict, name: str, path: str, where: Origin | None, label: str) -> Any:
        """Call the target; a value it rejects becomes a ConfigError at the config's position.

        Torch checks arguments with RuntimeError (a negative layer size, a bad device) as
        often as with ValueError, so those count too; NotImplementedError and
        RecursionError are bugs, not rejected values, and keep their traceback."""
        try:
            return target(*args, **kwargs)
        except ConfigError as err:
            if err.origin is not None:
                raise
            raise self.positioned(err, path, kwargs, where) from err
        except MtlcliError:
            raise
        except (NotImplementedError, RecursionError):
            raise
        except (TypeError, ValueError, RuntimeError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"{label}{name} rejected its arguments: {detail}", where) from err

    def positioned(self, err: ConfigError, path: str, named: dict, where: Origin | None) -> ConfigError:
        """A constructor's own ``ConfigError`` has no position; its message starts with the
        argument at fault (``class_split: ...``, ``class_split.2: ...``) when it knows it:
        point there, else at ``_target_``."""
        # The message's first word: an argument, or a dotted key inside one, followed by ':'
        # or by the sentence about it ("batch_size must be a positive integer").
        match = _LEADING_KEY.match(err.message)
        key = match.group(1) if match else ""
        origin = self.origin(_join(path, key)) if key.split(".", 1)[0] in named else None
        return ConfigError(err.message, origin or where, err.hint)

    def check_arguments(
        self, target: Any, name: str, args: list, kwargs: dict, path: str, partial: bool, where: Origin | None, label: str,
        injected: set = frozenset(),
    ) -> None:
        """Match arguments to the signature first, so a typo'd key gets its own position and a did-you-mean.

        ``injected`` keys come from the caller (the trainer's ``backbone=``), not from the
        config: a mistake about them points at ``_target_``."""
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):  # some builtins have no signature; the call itself will tell
            return
        parameters = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        accepted = [p.name for p in parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not takes_any:
            for key in kwargs:
                key_where = where if key in injected else self.origin(_join(path, key), of_key=True) or where
                if key in parameters and parameters[key].kind is inspect.Parameter.POSITIONAL_ONLY:
                    raise ConfigError(f"{label}{name} takes '{key}' positionally only, so it cannot be given by name", key_where)
                if key not in accepted:
                    guess = difflib.get_close_matches(str(key), accepted, n=1, cutoff=0.6)
                    hint = f"did you mean '{guess[0]}'?" if guess else f"it takes: {', '.join(accepted) or 'no keyword arguments'}"
                    raise ConfigError(f"{label}{name} has no argument '{key}'; {hint}", key_where)
        try:
            (signature.bind_partial if partial else signature.bind)(*args, **kwargs)
        except TypeError as err:
            raise ConfigError(f"{label}{name}: {err}", where) from None


class _CheckedPartial(functools.partial):
    """A ``_partial_: true`` node: the caller completes the call later (the optimizer with
    the model's parameters), and a value the target rejects then is still a ConfigError at
    the node's position, not a traceback from deep inside the trainer."""

    def _bind_errors(self, builder: _Builder, name: str, path: str, named: dict, where: Origin | None, label: str):
        self._error_context = (builder, name, path, named, where, label)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder, name, path, named, where, label = self._error_context
        return builder.call(self.func, (*self.args, *args), {**self.keywords, **kwargs}, name, path, where, label)


_LEADING_KEY = re.compile(r"\s*([A-Za-z_]\w*(?:\.\w+)*)(?::|\s)")


def locate(dotted: str, where: Origin | None = None, label: str = "") -> Any:
    """The object named by a dotted path: ``torch.optim.Adam``, ``pkg.mod.Class.method``.

    Says whether the module is missing, the module lacks the name, or importing the
    module failed (a broken dependency of an existing module).
    """
    parts = dotted.split(".") if isinstance(dotted, str) else []
    if not parts or not all(part.isidentifier() for part in parts):
        raise ConfigError(f"{label}_target_ '{dotted}' is not a dotted import path like torch.optim.Adam", where)
    obj = _import(parts[0], dotted, where, label)
    if obj is None:
        raise ConfigError(f"{label}cannot import _target_ '{dotted}': there is no module named '{parts[0]}'", where)
    for index in range(1, len(parts)):
        part = parts[index]
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        prefix = ".".join(parts[:index])
        submodule = _import(f"{prefix}.{part}", dotted, where, label) if inspect.ismodule(obj) else None
        if submodule is None:
            names = [n for n in dir(obj) if not n.startswith("_")]
            guess = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
            kind = "module" if inspect.ismodule(obj) else type(obj).__name__
            message = f"{label}cannot import _target_ '{dotted}': {kind} '{prefix}' has no attribute '{part}'"
            raise ConfigError(message + (f"; did you mean '{prefix}.{guess[0]}'?" if guess else ""), where)
        obj = submodule
    return obj


def _import(module: str, dotted: str, where: Origin | None, label: str) -> Any:
    """The module, None if it does not exist, ConfigError if it exists but fails to import."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            return None
        reason = f"No module named '{err.name}'"
    except MtlcliError:
        raise
    except Exception as err:  # a broken module: SyntaxError, a failing import-time check, ...
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    raise ConfigError(f"{label}cannot import _target_ '{dotted}': importing module '{module}' failed ({reason})", where)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)

