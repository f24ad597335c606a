"""Check configs against the signatures of their ``_target_``, to the line and column.

Every YAML file is read with positions (:mod:`mtlcli.yamlio`); each ``_target_``
node, at any depth, is checked against :func:`mtlcli.signature.signature_of` of
its target: required fields present, no unknown or injected keys, no ``???``
left, every value fitting its annotation (:mod:`mtlcli.typecheck`). Experiment
files are also composed and checked as a whole. The finding codes are listed in
:mod:`mtlcli.diagnostics`.

:func:`check_experiment` runs the same checks on a composed experiment, so
``mtlcli train`` stops before training with the same messages as ``validate``.
"""

from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from mtlcli.diagnostics import ERROR, WARNING, Finding, finding
from mtlcli.errors import ConfigError, Origin, UsageError
from mtlcli.signature import COMPONENT_KINDS, HYDRA_KEYS, Signature, TargetNotFound, locate, signature_of
from mtlcli.typecheck import Mismatch, check_value, describe

UNFILLED = "???"
_CONVERT_MODES = ("none", "partial", "object", "all")
_YAML_SUFFIXES = (".yaml", ".yml")

# Where a short name or a slightly wrong path most likely meant to point.
_KNOWN_MODULES = ("mtlcli.algorithms", "mtlcli.backbones", "mtlcli.data", "mtlcli.engine",
                  "torch.optim", "torch.optim.lr_scheduler")


@dataclass
class Report:
    """What ``mtlcli validate`` found in the files it checked."""

    findings: list[Finding] = field(default_factory=list)
    files_checked: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]


# -- positions -------------------------------------------------------------------------

class _FileLocator:
    """Positions of keys and values inside one loaded file (ruamel's line/column data)."""

    def __init__(self, path: str, root: Any):
        self.path = path
        self.root = root

    def _parent(self, at: tuple) -> Any:
        container = self.root
        for step in at[:-1]:
            container = container[step]
        return container

    def key(self, at: tuple) -> Origin:
        from mtlcli.yamlio import key_origin, node_origin

        if not at:
            return node_origin(self.path, self.root)
        parent = self._parent(at)
        if isinstance(parent, dict):
            return key_origin(self.path, parent, at[-1])
        return self.value(at)

    def value(self, at: tuple) -> Origin:
        from mtlcli.yamlio import node_origin, value_origin

        if not at:
            return node_origin(self.path, self.root)
        return value_origin(self.path, self._parent(at), at[-1])


class _ComposedLocator:
    """Positions in a composed experiment: where each value came from (file or override)."""

    def __init__(self, composed: Any):
        self.composed = composed

    def key(self, at: tuple) -> Origin:
        return self.composed.key_origin(tuple(at))

    def value(self, at: tuple) -> Origin:
        return self.composed.origin(tuple(at))


# -- the checks --------------------------------------------------------------------------

class _Checker:
    """Walks one config tree and collects findings."""

    def __init__(self, locator: Any, *, unfilled_severity: str):
        self.loc = locator
        self.unfilled_severity = unfilled_severity
        self.findings: list[Finding] = []

    def add(self, origin: Origin, code: str, message: str, hint: str = "", severity: str = ERROR) -> None:
        self.findings.append(finding(origin, severity, code, message, hint))

    def walk(self, value: Any, at: tuple, kind: str | None = None) -> None:
        """Find ``_target_`` nodes and ``???`` anywhere below ``at``."""
        if isinstance(value, dict):
            if "_target_" in value:
                self.component(value, at, kind)
            else:
                for key, item in value.items():
                    self.walk(item, at + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.walk(item, at + (index,))
        elif isinstance(value, str) and value == UNFILLED:
            name = _dotted(at) or "value"
            self.add(self.loc.value(at), "unfilled-value", f"{name} is ??? (must be set)",
                     "set it here, in the experiment, or with an override on the command line",
                     severity=self.unfilled_severity)

    def component(self, node: dict, at: tuple, kind: str | None) -> None:
        """A mapping with ``_target_``: check it against the target's signature."""
        target = node["_target_"]
        target_at = at + ("_target_",)
        if not isinstance(target, str) or not target.strip():
            self.add(self.loc.value(target_at), "bad-target", f"_target_ must be a dotted path, got {describe(target)}",
                     "e.g. _target_: mtlcli.algorithms.JointLearning")
            return self._walk_fields(node, at)
        obj, error = _locate(target)
        if error is not None:
            self.add(self.loc.value(target_at), "bad-target", f"cannot import {target}: {error.reason}",
                     _target_hint(target, error))
            return self._walk_fields(node, at)
        if not callable(obj):
            self.add(self.loc.value(target_at), "not-callable",
                     f"{target} is a {type(obj).__name__}, not a class or function",
                     "_target_ must name a class or a function that builds the object")
            return self._walk_fields(node, at)
        spec = COMPONENT_KINDS.get(kind) if kind else None
        if spec is not None and spec.base is not None:
            base = locate(spec.base)
            if not (inspect.isclass(obj) and issubclass(obj, base)):
                self.add(self.loc.value(target_at), "wrong-base-class",
                         f"{target} is not a subclass of {base.__name__}, so it cannot be an {kind}",
                         f"an {kind}/ config must name a {base.__module__}.{base.__name__} subclass")
                return self._walk_fields(node, at)  # its fields would only add noise
        sig = _signature(obj, kind, target)
        if sig is None:
            return self._walk_fields(node, at)
        partial = _is_true(node.get("_partial_", False))
        if spec is not None and spec.partial and not partial:
            self.add(self.loc.key(target_at), "missing-partial",
                     f"{kind} config must be _partial_: true; the trainer completes it with "
                     f"{', '.join(spec.injected)}", "add the line `_partial_: true`")
        filled_by_args = self._special_keys(node, at, sig)
        for key, value in node.items():
            if key in HYDRA_KEYS:
                continue
            self.field(sig, key, value, at, filled_by_args)
        if not partial:
            self._missing(node, at, sig, filled_by_args)

    def field(self, sig: Signature, key: Any, value: Any, at: tuple, filled_by_args: set[str]) -> None:
        where = at + (key,)
        if key in sig.injected:
            self.add(self.loc.key(where), "injected-field",
                     f"{key} is injected by the trainer and cannot be set in a config", f"remove the key {key!r}")
            return
        spec = sig.get(key) if isinstance(key, str) else None
        if spec is None:
            if not sig.accepts_extra:
                self.add(self.loc.key(where), "unknown-field", f"unknown field {key!r} for {sig.target}",
                         _field_hint(key, sig))
            return self.walk(value, where)
        if not spec.settable:
            self.add(self.loc.key(where), "not-settable", f"{key} cannot be set by name", spec.unsettable_reason)
            return
        if key in filled_by_args:
            self.add(self.loc.key(where), "bad-special-key", f"{key} is set twice: by _args_ and by name",
                     f"remove {key} from _args_ or the key {key!r}")
        if not (value is None and spec.default is None):  # `x: int = None` means Optional[int]
            self.value(value, spec.annotation, where, _dotted(where))
        self.walk(value, where)

    def value(self, value: Any, annotation: Any, where: tuple, name: str) -> None:
        for mismatch in check_value(value, annotation):
            inner = where + mismatch.path
            origin = self.loc.key(inner) if mismatch.on_key else self.loc.value(inner)
            self.add(origin, "type-mismatch", f"{name}{mismatch.message if mismatch.path else ': ' + mismatch.message}",
                     _mismatch_hint(mismatch))

    def _special_keys(self, node: dict, at: tuple, sig: Signature) -> set[str]:
        """Check the Hydra keys; return the fields that ``_args_`` fills positionally."""
        for key in ("_partial_", "_recursive_"):
            if key in node and not _is_bool(node[key]):
                self.add(self.loc.value(at + (key,)), "bad-special-key",
                         f"{key} must be true or false, got {describe(node[key])}")
        if "_convert_" in node and node["_convert_"] not in _CONVERT_MODES:
            self.add(self.loc.value(at + ("_convert_",)), "bad-special-key",
                     f"_convert_ must be one of {', '.join(_CONVERT_MODES)}, got {describe(node['_convert_'])}")
        args = node.get("_args_")
        if args is None:
            return set()
        if not isinstance(args, list):
            self.add(self.loc.value(at + ("_args_",)), "bad-special-key",
                     f"_args_ must be a list of positional arguments, got {describe(args)}")
            return set()
        positional = [f for f in sig.fields if f.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                          inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        star = next((f for f in sig.fields if f.kind is inspect.Parameter.VAR_POSITIONAL), None)
        filled = set()
        for index, item in enumerate(args):
            spec = positional[index] if index < len(positional) else star
            if spec is None:
                self.add(self.loc.value(at + ("_args_", index)), "bad-special-key",
                         f"_args_ has {len(args)} items but {sig.target} takes {len(positional)} positional arguments")
                break
            if spec is not star:
                filled.add(spec.name)
            self.value(item, spec.annotation, at + ("_args_", index), f"_args_[{index}] ({spec.name})")
            self.walk(item, at + ("_args_", index))
        return filled

    def _missing(self, node: dict, at: tuple, sig: Signature, filled_by_args: set[str]) -> None:
        for spec in sig.fields:
            if not spec.required or spec.name in node or spec.name in filled_by_args:
                continue
            if spec.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            typed = f" ({spec.type_text})" if spec.type_text else ""
            if spec.settable:
                hint = f"add `{spec.name}: <value>`" + (f": {spec.description}" if spec.description else "")
            else:
                hint = f"{spec.name} is positional-only: pass it as the first items of _args_"
            self.add(self.loc.key(at + ("_target_",)), "missing-field",
                     f"missing required field {spec.name!r}{typed} of {sig.target}", hint)

    def _walk_fields(self, node: dict, at: tuple) -> None:
        for key, value in node.items():
            if key not in HYDRA_KEYS:
                self.walk(value, at + (key,))


def _dotted(at: tuple) -> str:
    return ".".join(str(step) for step in at)


@lru_cache(maxsize=None)
def _locate(target: str) -> tuple[Any, TargetNotFound | None]:
    try:
        return locate(target), None
    except TargetNotFound as err:
        return None, err


@lru_cache(maxsize=None)
def _signature(obj: Any, kind: str | None, target: str) -> Signature | None:
    try:
        return signature_of(obj, kind=kind, target=target)
    except (TypeError, ValueError):  # no introspectable signature (some builtins): nothing to check
        return None


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "ScalarBoolean"


def _is_true(value: Any) -> bool:
    return _is_bool(value) and bool(value)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``did you mean 'x'?`` for the closest candidate, or ''."""
    matches = difflib.get_close_matches(str(word), list(dict.fromkeys(candidates)), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else ""


def _field_hint(key: Any, sig: Signature) -> str:
    names = [f.name for f in sig.settable]
    suggestion = did_you_mean(key, names)
    if suggestion:
        return suggestion
    if not names:
        return f"{sig.target} takes no config fields"
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"fields of {sig.name}: {shown}"


def _mismatch_hint(mismatch: Mismatch) -> str:
    value = mismatch.value
    if mismatch.choices:
        if isinstance(value, str):
            suggestion = did_you_mean(value, [str(c) for c in mismatch.choices])
            if suggestion:
                return suggestion
        if any(str(c) == str(value) for c in mismatch.choices):
            return f"quote it: '{value}'" if not isinstance(value, str) else "remove the quotes"
        return ""
    if mismatch.expected in ("int", "float") and _is_bool(value):
        return "true/false is a bool here; write a number"
    if mismatch.expected in ("int", "float") and isinstance(value, str):
        try:
            float(value)
            return "remove the quotes: a quoted number is a string"
        except ValueError:
            return ""
    if mismatch.expected == "str" and value is not None and not isinstance(value, (dict, list)):
        return f"quote it: '{value}'" if not _is_bool(value) else "quote it if you mean the text"
    return ""


def _target_hint(target: str, error: TargetNotFound) -> str:
    """A did-you-mean for a wrong ``_target_``: fix the segment that failed, or find the
    class by its last name among mtlcli's and torch's usual modules."""
    parts = target.split(".")
    scored = []
    for candidate in error.candidates:
        prefix, _, name = candidate.rpartition(".")
        depth = len(prefix.split("."))  # the index of the segment this candidate would replace
        if depth < len(parts):
            score = difflib.SequenceMatcher(None, name, parts[depth]).ratio()
            scored.append((score, ".".join([prefix, name, *parts[depth + 1:]])))
    for score, fixed in sorted(scored, reverse=True):
        if score >= 0.6 and _locate(fixed)[1] is None:
            return f"did you mean {fixed!r}?"
    known: dict[str, str] = {}
    for module in _KNOWN_MODULES:
        obj, err = _locate(module)
        if err is None:
            for name in getattr(obj, "__all__", None) or dir(obj):
                if not name.startswith("_"):
                    known.setdefault(name, f"{module}.{name}")
    match = difflib.get_close_matches(parts[-1], list(known), n=1, cutoff=0.6)
    if match:
        return f"did you mean {known[match[0]]!r}?"
    return "check the module path and the class name (the class must be importable from here)"


# -- files --------------------------------------------------------------------------------

def config_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The YAML files named, and those inside the folders named (hidden ones skipped)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = []
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                # A YAML name whose link is broken or loops is kept: reading it reports why,
                # instead of the folder passing as clean without it.
                readable = found.is_file() or (found.is_symlink() and not found.exists())
                if readable and found.suffix in _YAML_SUFFIXES and not hidden:
                    inside.append(found)
            if not inside:
                raise UsageError(f"{raw}: no YAML files (.yaml, .yml) in this folder")
            files += inside
        elif path.is_file():
            files.append(path)
        elif path.is_symlink():
            raise UsageError(f"{raw}: a broken or looping link")
        elif path.exists():
            raise UsageError(f"{raw}: not a regular file or folder")
        else:
            raise UsageError(f"{raw}: no such file or folder")
    return list(dict.fromkeys(files))


def validate_paths(paths: Sequence[str | os.PathLike]) -> Report:
    """Check every YAML file in ``paths`` (files or folders)."""
    report = Report()
    for path in config_files(paths):
        report.findings += validate_file(path)
        report.files_checked += 1
    return report


_LOAD_CODES = (("duplicate key", "duplicate-key"), ("empty file", "empty-file"), ("not valid UTF-8", "not-utf8"),
               ("cannot read file", "unreadable"), ("file not found", "unreadable"))


def validate_file(path: str | os.PathLike) -> list[Finding]:
    """Findings for one YAML file, sorted by position. A file in an ``experiment/`` folder
    is also composed (with its folder's configs first on the search path) and checked whole."""
    from mtlcli.yamlio import display_path, load_yaml

    path = Path(path)
    shown = display_path(path)
    try:
        root = load_yaml(path)
    except ConfigError as err:
        return [_error_finding(err, shown)]
    findings = check_loaded(root, shown, group=path.parent.name, search_path=_search_path_for(path))
    if path.parent.name == EXPERIMENT_GROUP and not any(f.is_error for f in findings) and isinstance(root, dict):
        findings += _compose_and_check(path)
    return sorted(dict.fromkeys(findings), key=lambda f: (f.path != shown, f.path, f.line, f.col))


def validate_text(text: str, *, path: str = "<text>", group: str | None = None) -> list[Finding]:
    """Findings for YAML text, as if it were the file ``path`` in the config group ``group``."""
    from mtlcli.yamlio import load_yaml_text

    try:
        root = load_yaml_text(text, path)
    except ConfigError as err:
        return [_error_finding(err, path)]
    return sorted(check_loaded(root, path, group=group), key=lambda f: (f.line, f.col))


def check_loaded(root: Any, shown: str, *, group: str | None, search_path: list[Path] | None = None) -> list[Finding]:
    """The per-file checks on a loaded YAML document (with ruamel positions)."""
    locator = _FileLocator(shown, root)
    checker = _Checker(locator, unfilled_severity=ERROR if group == EXPERIMENT_GROUP else WARNING)
    if not isinstance(root, dict):
        checker.add(locator.value(()), "not-a-mapping", f"a config file must be a mapping of keys, got {describe(root)}",
                    "write `key: value` lines")
        return checker.findings
    kind = group if group in COMPONENT_KINDS else None
    if "_target_" not in root and kind is not None and "defaults" not in root:
        checker.add(locator.key(()), "missing-target", f"a {group} config needs a _target_",
                    "add `_target_: <dotted.path.Class>` as the first line")
    if "defaults" in root and search_path is not None:
        _check_defaults(checker, root, group, search_path)
    body = {k: v for k, v in root.items() if k != "defaults"} if "_target_" not in root else root
    checker.walk(body, (), kind)
    return checker.findings


EXPERIMENT_GROUP = "experiment"


def _search_path_for(path: Path) -> list[Path]:
    """The user's configs folder a file lives in (the parent of its group folder), then the shipped one."""
    from mtlcli.resources import config_search_path

    folder = path.resolve().parent
    configs_root = folder.parent if folder.name in COMPONENT_KINDS or folder.name == EXPERIMENT_GROUP else folder
    return config_search_path(configs_root)


def _check_defaults(checker: _Checker, root: dict, group: str | None, search_path: list[Path]) -> None:
    """Every ``group: option`` entry names an existing config (did-you-mean on a wrong one)."""
    from mtlcli.compose import list_group_options

    entries = root["defaults"]
    if not isinstance(entries, list):
        checker.add(checker.loc.value(("defaults",)), "bad-defaults", "defaults must be a list of entries",
                    "write one `- group: option` line per entry")
        return
    for index, entry in enumerate(entries):
        where = ("defaults", index)
        if isinstance(entry, str) or entry is None:
            continue  # _self_ or a config name: composition checks it
        if not isinstance(entry, dict) or len(entry) != 1:
            checker.add(checker.loc.value(where), "bad-defaults", "a defaults entry must be `- group: option`",
                        "e.g. `- /mtl_algorithm: joint_learning`")
            continue
        (written, option), = entry.items()
        words = str(written).split()
        if not words or "optional" in words[:-1] or option is None or not isinstance(option, str) or "${" in option:
            continue
        group_text = words[-1].partition("@")[0]
        absolute = group_text.startswith("/")
        group_path = group_text.lstrip("/")
        group_dir = group if group in COMPONENT_KINDS or group == EXPERIMENT_GROUP else ""
        if not absolute and group_dir:  # Hydra: a relative group is looked up under the file's own group
            group_path = f"{group_dir}/{group_path}"
        name = option.removesuffix(".yaml").removesuffix(".yml")
        options = list_group_options(group_path, search_path)
        if name in options:
            continue
        if not options:
            checker.add(checker.loc.key(where + (written,)), "unknown-option", f"no config group {group_path!r}",
                        did_you_mean(group_path, [p.name for root_dir in search_path if root_dir.is_dir()
                                                  for p in root_dir.iterdir() if p.is_dir()]) or "")
            continue
        checker.add(checker.loc.value(where + (written,)), "unknown-option",
                    f"no option {name!r} in config group {group_path!r}",
                    did_you_mean(name, options) or f"options: {', '.join(options)}")


def _error_finding(err: ConfigError, shown: str) -> Finding:
    """A loading or composition error as a finding with the right code."""
    code = next((c for prefix, c in _LOAD_CODES if err.message.startswith(prefix)), None)
    if code is None:
        if err.message.startswith("invalid YAML"):
            code = "yaml-syntax"
        elif err.message.startswith(("unknown option", "unknown config group", "config '")):
            code = "unknown-option"
        elif "interpolation" in err.message or "${" in err.message:
            code = "bad-interpolation"
        elif "defaults" in err.message or "_self_" in err.message:
            code = "bad-defaults"
        elif err.message.startswith("a config file must be a mapping"):
            code = "not-a-mapping"
        else:
            code = "bad-experiment"
    origin = err.origin or Origin(shown)
    return finding(origin, ERROR, code, err.message, err.hint or _load_hint(code))


def _compose_and_check(path: Path) -> list[Finding]:
    from mtlcli.compose import compose
    from mtlcli.yamlio import display_path

    try:
        composed = compose(str(path), [], _search_path_for(path))
    except ConfigError as err:
        return [_error_finding(err, display_path(path))]
    return check_experiment(composed)


def _load_hint(code: str) -> str:
    return {
        "yaml-syntax": "fix the YAML syntax at this position",
        "duplicate-key": "keep one of the two keys",
        "empty-file": "write the config's keys, or delete the file",
        "not-utf8": "save the file as UTF-8",
    }.get(code, "")


# -- composed experiments ---------------------------------------------------------------

REQUIRED_SECTIONS = ("mtl_dataset", "mtl_algorithm", "backbone", "optimizer", "trainer")


def check_experiment(composed: Any) -> list[Finding]:
    """The checks of ``mtlcli validate`` on a composed experiment (what ``train`` runs first).

    Each top-level component (``mtl_algorithm``, ``backbone``, ...) is checked as its
    kind, with positions from where each value came from; then the experiment's own
    fields, and whether the components fit together: the dataset is built (cheap, no
    data is read) to learn its task ids and input shape.
    """
    config = composed.config
    checker = _Checker(_ComposedLocator(composed), unfilled_severity=ERROR)
    misplaced = _misplaced_sections(config)
    for key, sections in misplaced.items():
        checker.add(_experiment_file_origin(composed) or checker.loc.key((key,)), "bad-experiment",
                    f"{', '.join(sections)}: the experiment's sections ended up under '{key}', not at the top level",
                    "start the experiment file with the line '# @package _global_'")
    dataset_ok = True
    for key, value in config.items():
        if key in misplaced:
            continue  # checking them where they landed would only blame the sections themselves
        before = len(checker.findings)
        checker.walk(value, (key,), key if key in COMPONENT_KINDS else None)
        if key == "mtl_dataset":
            dataset_ok = not any(f.is_error for f in checker.findings[before:])
    train_tasks = _check_tasks(checker, config, "train_tasks", required=True)
    eval_tasks = _check_tasks(checker, config, "eval_tasks", required=False) or train_tasks
    seed = config.get("global_seed")
    if "global_seed" in config and (not isinstance(seed, int) or _is_bool(seed) or not 0 <= seed < 2**63):
        checker.add(checker.loc.value(("global_seed",)), "bad-experiment",
                    f"global_seed must be an int in 0..2**63-1, got {describe(seed)}")
    for key in ("expr_name", "output_dir"):
        if key in config and not (isinstance(config[key], str) and config[key]):
            checker.add(checker.loc.value((key,)), "bad-experiment", f"{key} must be a non-empty string, got {describe(config[key])}")
    for section in REQUIRED_SECTIONS:
        if not isinstance(config.get(section), dict):
            where = checker.loc.value((section,)) if section in config else (_experiment_file_origin(composed) or checker.loc.value(()))
            checker.add(where, "bad-experiment",
                        f"the experiment has no {section} config",
                        f"add `- /{section}: <option>` to its defaults list")
    if dataset_ok and isinstance(config.get("mtl_dataset"), dict):
        _check_fit(checker, composed, train_tasks, eval_tasks)
    return checker.findings


def _experiment_file_origin(composed: Any) -> Origin | None:
    """Line 1 of the experiment file, where its ``# @package`` header belongs."""
    from mtlcli.yamlio import display_path

    choice = str(getattr(composed, "choices", {}).get("experiment"))
    for path in getattr(composed, "files", []):
        if str(path) == choice or (path.parent.name == EXPERIMENT_GROUP and path.stem == choice):
            return Origin(display_path(path), 1, 1)
    return None


def _misplaced_sections(config: dict) -> dict[str, list[str]]:
    """Top-level keys under which the sections an experiment sets at the top level ended up
    (``experiment.mtl_algorithm``, ``foo.bar.trainer``): an experiment file without
    ``# @package _global_`` is composed under its group's package, and everything then
    looks missing. Maps the top-level key to the dotted sections found."""
    misplaced: dict[str, list[str]] = {}

    def search(value: Any, at: str, top: str) -> None:
        for key, child in value.items():
            if not isinstance(child, dict):
                continue
            if key in REQUIRED_SECTIONS and not isinstance(config.get(key), dict):
                misplaced.setdefault(top, []).append(f"{at}.{key}")
            elif at.count(".") < 3:
                search(child, f"{at}.{key}", top)

    for key, value in config.items():
        if key not in REQUIRED_SECTIONS and isinstance(value, dict):
            search(value, str(key), key)
    return misplaced


def _check_tasks(checker: _Checker, config: dict, key: str, *, required: bool) -> list[int] | None:
    """``train_tasks``/``eval_tasks``: an int N (tasks 1..N) or a non-empty list of distinct task ids."""
    if key not in config:
        if required:
            checker.add(checker.loc.value(()), "bad-experiment", f"the experiment does not set {key}",
                        f"add `{key}: N` (tasks 1..N) or a list of task ids")
        return None
    value = config[key]
    if isinstance(value, int) and not _is_bool(value) and value >= 1:
        return list(range(1, value + 1))
    if isinstance(value, list) and value and all(isinstance(t, int) and not _is_bool(t) for t in value):
        if len(set(value)) == len(value):
            return list(value)
        checker.add(checker.loc.value((key,)), "bad-experiment", f"{key} lists a task twice: {value}")
        return None
    checker.add(checker.loc.value((key,)), "bad-experiment",
                f"{key} must be an int N >= 1 (tasks 1..N) or a non-empty list of task ids, got {describe(value)}")
    return None


def _check_fit(checker: _Checker, composed: Any, train_tasks: list[int] | None, eval_tasks: list[int] | None) -> None:
    """Components that are each fine but do not fit together."""
    from mtlcli.errors import MtlcliError
    from mtlcli.instantiate import instantiate

    config = composed.config
    loc = checker.loc
    try:
        dataset = instantiate(config["mtl_dataset"], origins=composed, path="mtl_dataset")
        task_ids, input_shape = list(dataset.task_ids), tuple(dataset.input_shape)
    except ConfigError as err:
        checker.add(err.origin or loc.value(("mtl_dataset", "_target_")), "rejected-value", err.message, err.hint or "")
        return
    except MtlcliError as err:
        checker.add(loc.value(("mtl_dataset", "_target_")), "rejected-value", str(err))
        return
    except Exception as err:  # a dataset class's own validation (ValueError, TypeError, ...)
        checker.add(loc.value(("mtl_dataset", "_target_")), "rejected-value",
                    f"building the dataset failed: {type(err).__name__}: {err}")
        return
    for key, tasks in (("train_tasks", train_tasks), ("eval_tasks", eval_tasks)):
        unknown = [t for t in tasks or [] if t not in task_ids]
        if unknown and key in config:
            checker.add(loc.value((key,)), "incompatible",
                        f"{key} names task(s) {unknown} that the dataset does not have", f"its tasks: {task_ids}")
    untrained = [t for t in eval_tasks or [] if t not in (train_tasks or [])]
    if untrained and "eval_tasks" in config and train_tasks:
        checker.add(loc.value(("eval_tasks",)), "incompatible",
                    f"eval_tasks {untrained} are not in train_tasks {train_tasks}: their heads would be untrained",
                    "evaluate only tasks that are trained")
    _check_backbone_input(checker, config.get("backbone") or {}, input_shape)
    _check_algorithm_tasks(checker, config.get("mtl_algorithm") or {}, train_tasks or [])


def _check_backbone_input(checker: _Checker, backbone: dict, input_shape: tuple[int, ...]) -> None:
    features = 1
    for size in input_shape:
        features *= int(size)
    input_dim = backbone.get("input_dim")
    if isinstance(input_dim, int) and not _is_bool(input_dim) and input_dim != features:
        checker.add(checker.loc.value(("backbone", "input_dim")), "incompatible",
                    f"backbone.input_dim is {input_dim} but the dataset's inputs have {features} values "
                    f"(shape {input_shape})", f"set input_dim: {features}")
    channels = backbone.get("input_channels")
    if isinstance(channels, int) and not _is_bool(channels) and input_shape and channels != input_shape[0]:
        checker.add(checker.loc.value(("backbone", "input_channels")), "incompatible",
                    f"backbone.input_channels is {channels} but the dataset's inputs have {input_shape[0]} "
                    f"channel(s) (shape {input_shape})", f"set input_channels: {input_shape[0]}")


def _check_algorithm_tasks(checker: _Checker, algorithm: dict, train_tasks: list[int]) -> None:
    """The algorithm's own needs: ``min_tasks`` (a class attribute, when it declares one), and
    per-task settings (a ``dict[int, ...]`` field named after tasks) that name untrained tasks."""
    target = algorithm.get("_target_")
    obj, error = _locate(target) if isinstance(target, str) else (None, True)
    if error is not None:
        return
    min_tasks = getattr(obj, "min_tasks", None)
    if isinstance(min_tasks, int) and len(train_tasks) < min_tasks:
        checker.add(checker.loc.value(("train_tasks",)), "incompatible",
                    f"{target} needs at least {min_tasks} tasks; train_tasks has {len(train_tasks)}")
    sig = _signature(obj, "mtl_algorithm", target)
    for spec in sig.settable if sig else ():
        value = algorithm.get(spec.name)
        if "task" not in spec.name or not isinstance(value, dict):
            continue
        for key in value:
            if isinstance(key, int) and key not in train_tasks:
                checker.add(checker.loc.key(("mtl_algorithm", spec.name, key)), "incompatible",
                            f"mtl_algorithm.{spec.name} names task {key}, which is not trained",
                            f"train_tasks: {train_tasks}", severity=WARNING)


def ensure_valid(composed: Any) -> None:
    """Raise the first error of :func:`check_experiment` as a :class:`ConfigError` at its
    position (what ``mtlcli train`` stops with before building anything)."""
    errors = [f for f in check_experiment(composed) if f.is_error]
    if errors:
        first = errors[0]
        error = ConfigError(first.message, first.origin, first.hint or None)
        if len(errors) > 1:  # validate takes no overrides, so it cannot list the rest: say how many
            error.args = (f"{error} [{len(errors) - 1} more problem(s) after this one]",)
        raise error


def validate_command(paths: Sequence[str | os.PathLike], *, output_format: str = "text", strict: bool = False,
                     echo=print) -> int:
    """``mtlcli validate``: print the findings; return the exit code (0 clean, 1 findings)."""
    from mtlcli.diagnostics import format_json, format_text

    if output_format not in ("text", "json"):
        raise UsageError(f"--format must be text or json, got {output_format!r}")
    if not paths:
        if not Path("configs").is_dir():
            raise UsageError("no configs/ folder here; name the YAML files or folders to check")
        paths = [Path("configs")]
    report = validate_paths(paths)
    findings = sorted(report.findings, key=lambda f: (f.path, f.line, f.col))
    echo(format_json(findings, report.files_checked) if output_format == "json"
         else format_text(findings, report.files_checked))
    failing = report.errors or (strict and report.findings)
    return 1 if failing else 0
