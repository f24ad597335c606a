"""Compose one experiment config from Hydra-style YAML files, remembering where each value came from.

Why not Hydra itself: errors must point at ``file:line:col`` (Hydra loses positions),
and the tool must not depend on Hydra at run time. The rules follow Hydra 1.3 on the
parts CLArena configs use, and a test composes every shipped experiment with both:

- ``entrance.yaml`` (defaults ``_self_``, ``experiment: null``) is the primary config;
  the experiment is selected as the option of the ``experiment`` group.
- Defaults lists: ``- /group: option`` (absolute), ``- group: option`` (relative to the
  file's group), ``- config`` (a file merged at the same package), ``_self_``,
  ``optional``, ``override``, ``group@package``, ``group: null``; ``# @package`` headers.
  Lists are expanded last entry first, as Hydra does, so an ``override`` in a later
  file (the experiment) applies to groups selected earlier (by the entrance).
- Merging: mappings merge deeply, lists and scalars are replaced, later wins.
- Command-line overrides: ``key=value``, ``group=option``, ``+key=value``, ``++key=value``,
  ``~key``, ``~key=value``, ``+group=option``, ``~group``; values parsed like Hydra.
- Interpolation: ``${a.b}``, ``${a.b[0]}``, ``${.sibling}``, ``${now:FORMAT}``,
  ``${oc.env:VAR,default}``, ``${oc.select:key,default}``, inside longer strings too.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from mtlcli.errors import ConfigError, Origin
from mtlcli.yamlio import display_path, dump_yaml, key_origin, load_yaml, node_origin, to_plain, value_origin

__all__ = ["Composed", "compose", "list_group_options", "parse_override", "Override"]

COMMAND_LINE = Origin("<command line>")
MISSING = "???"  # Hydra's "must be set" value
PRIMARY_CONFIG = "entrance"
EXPERIMENT_GROUP = "experiment"


# --- the result ------------------------------------------------------------------------


@dataclass
class Composed:
    """A composed config: plain data plus where every key and value was written."""

    config: dict
    files: list[Path]
    choices: dict[str, str | None]
    resolved: bool = True
    _root: "_Node" = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self._root is None:  # built from plain data: no file positions to offer
            self._root = _node_from_plain(self.config, Origin("<composed config>"))

    def origin(self, key: str | tuple) -> Origin:
        """Where the value at a dotted key (``trainer.max_epochs``, ``a.b.0``) was written.

        For a key the config does not have, the position of its closest existing
        parent (a message about a missing field then points at the section).
        """
        return self._node(key).origin

    def key_origin(self, key: str | tuple) -> Origin:
        """Where the key itself was written (for 'unknown field' messages); parent's if absent."""
        return self._node(key).key_origin

    def has(self, key: str | tuple) -> bool:
        """Whether the composed config has this dotted key."""
        return self._node(key, exact=True) is not None

    def to_yaml(self) -> str:
        """The composed config as YAML text, as saved with a run."""
        return dump_yaml(self.config)

    def _node(self, key: str | tuple, exact: bool = False) -> Any:
        parts = tuple(key.split(".")) if isinstance(key, str) else tuple(key)
        node = self._root
        for part in parts if parts != ("",) else ():
            found = _child(node, part)
            if found is None:
                return None if exact else node
            node = found
        return node


class _Node:
    """A config value (mapping of nodes, list of nodes, or scalar) with its positions."""

    __slots__ = ("value", "origin", "key_origin")

    def __init__(self, value: Any, origin: Origin, key_origin: Origin | None = None):
        self.value = value
        self.origin = origin
        self.key_origin = key_origin or origin

    def plain(self) -> Any:
        if isinstance(self.value, dict):
            return {key: child.plain() for key, child in self.value.items()}
        if isinstance(self.value, list):
            return [child.plain() for child in self.value]
        return self.value


def _step(node: _Node, part: Any) -> tuple[_Node, Any] | None:
    """The child at ``part`` and its real key (``"1"`` may be the int key 1 or list index 1)."""
    if isinstance(node.value, dict):
        if part in node.value:
            return node.value[part], part
        if isinstance(part, str) and re.fullmatch(r"-?\d+", part) and int(part) in node.value:
            return node.value[int(part)], int(part)
        return None
    if isinstance(node.value, list):
        try:
            index = int(part)
        except (TypeError, ValueError):
            return None
        return (node.value[index], index) if 0 <= index < len(node.value) else None
    return None


def _child(node: _Node, part: Any) -> _Node | None:
    step = _step(node, part)
    return step[0] if step else None


def _node_from_plain(value: Any, origin: Origin) -> _Node:
    if isinstance(value, dict):
        return _Node({key: _node_from_plain(item, origin) for key, item in value.items()}, origin)
    if isinstance(value, list):
        return _Node([_node_from_plain(item, origin) for item in value], origin)
    return _Node(value, origin)


def _node_from_yaml(data: Any, path: str, origin: Origin, key_pos: Origin) -> _Node:
    if isinstance(data, dict):
        children = {
            to_plain(key): _node_from_yaml(item, path, value_origin(path, data, key), key_origin(path, data, key))
            for key, item in data.items()
        }
        return _Node(children, origin, key_pos)
    if isinstance(data, list):
        children = [_node_from_yaml(item, path, value_origin(path, data, index), value_origin(path, data, index)) for index, item in enumerate(data)]
        return _Node(children, origin, key_pos)
    return _Node(to_plain(data), origin, key_pos)


def _merge(target: _Node, source: _Node) -> None:
    """Merge mapping ``source`` into mapping ``target`` in place (OmegaConf semantics)."""
    for key, incoming in source.value.items():
        current = target.value.get(key)
        if current is not None and isinstance(current.value, dict) and isinstance(incoming.value, dict):
            _merge(current, incoming)
        elif current is not None and incoming.value == MISSING:
            continue  # "???" means "must be set", it never erases a value already set
        else:
            target.value[key] = incoming


# --- the search path -------------------------------------------------------------------


def _default_search_path() -> list[Path]:
    from mtlcli.resources import config_search_path

    return config_search_path()


def _with_extension(name: str) -> str:
    return name if name.endswith((".yaml", ".yml")) else name + ".yaml"


def _option_name(name: str) -> str:
    return name[: -len(".yaml")] if name.endswith(".yaml") else name[: -len(".yml")] if name.endswith(".yml") else name


def list_group_options(group: str, search_path: list[Path] | None = None) -> list[str]:
    """Option names (file names without ``.yaml``) of a config group, over the whole search path."""
    roots = _default_search_path() if search_path is None else search_path
    names = set()
    for root in roots:
        folder = Path(root) / group
        if folder.is_dir():
            names.update(_option_name(p.name) for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    return sorted(names)


def _group_exists(group: str, roots: list[Path]) -> bool:
    return bool(group) and any((Path(root) / group).is_dir() for root in roots)


def _find_config(config_path: str, roots: list[Path]) -> Path | None:
    for root in roots:
        candidate = Path(root) / _with_extension(config_path)
        if candidate.is_file():
            return candidate
    return None


def _did_you_mean(word: str, candidates: list[str]) -> str | None:
    names = [str(c) for c in candidates]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    if close:
        return close[0]
    # a short, misspelt start of a long name ("exmple" for "example_mtl_train") is too far
    # from the whole name for difflib: compare it with the name's start of the same length
    word = str(word)
    scored = [(difflib.SequenceMatcher(None, word, name[: len(word) + 1]).ratio(), name) for name in names if len(word) >= 3]
    best = max(scored, default=(0.0, None))
    ties = sum(1 for score, _ in scored if score == best[0])
    return best[1] if best[0] >= 0.75 and ties == 1 else None


def _unknown_option_error(group: str, option: str, roots: list[Path], origin: Origin, what: str | None = None) -> ConfigError:
    options = list_group_options(group, roots)
    label = what or f"option '{option}' for config group '{group}'"
    if not _group_exists(group, roots):
        groups = sorted({p.name for root in roots if Path(root).is_dir() for p in Path(root).iterdir() if p.is_dir()})
        message = f"unknown config group '{group}'"
        guess = _did_you_mean(group, groups)
        hint = f"groups: {', '.join(groups)}" if groups else f"no config groups in {', '.join(map(str, roots))}"
        return ConfigError(message + (f"; did you mean '{guess}'?" if guess else ""), origin, hint)
    guess = _did_you_mean(_option_name(option), options)
    message = f"unknown {label}" + (f"; did you mean '{guess}'?" if guess else "")
    return ConfigError(message, origin, f"available: {', '.join(options)}" if options else f"config group '{group}' has no options")


# --- overrides (Hydra's command-line grammar, the parts that make sense for one run) -----

_ID = r"[A-Za-z_$][\w\-$]*"
_KEY_RE = re.compile(rf"(?:{_ID}|\d+)(?:\.(?:{_ID}|\d+))*|{_ID}(?:/{_ID})+")
_PACKAGE_RE = re.compile(rf"(?:(?:{_ID}|\d+)(?:\.(?:{_ID}|\d+))*)?")
_DIGITS = r"[0-9](?:_?[0-9])*"
_INT_RE = re.compile(r"[+-]?(?:0|[1-9](?:_?[0-9])*)")
_POINT = rf"(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}\.)"
_FLOAT_RE = re.compile(rf"[+-]?(?:{_POINT}|(?:{_DIGITS}|{_POINT})[eE][+-]?{_DIGITS}|inf|nan)", re.IGNORECASE)
_UNQUOTED_OK = re.compile(r"[\w\-+./$%*@?|:\\ \t]")


@dataclass(frozen=True)
class Override:
    """One parsed command-line override."""

    text: str
    action: str  # "set", "add" (+), "force" (++), "delete" (~)
    key: str
    package: str | None
    value: Any  # parsed value; None also for "~key" (see has_value)
    has_value: bool

    @property
    def origin(self) -> Origin:
        return Origin(f"<command line: {self.text}>")


def parse_override(text: str) -> Override:
    """Parse one override like Hydra does; a malformed one is a ConfigError naming it."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"bad override '{text}': {reason}", COMMAND_LINE)

    body = text.strip()
    action = "set"
    for prefix, name in (("++", "force"), ("+", "add"), ("~", "delete")):
        if body.startswith(prefix):
            action, body = name, body[len(prefix) :]
            break
    key_text, sep, value_text = body.partition("=")
    key_text = key_text.strip()
    if not sep and action != "delete":
        raise bad("expected key=value")
    if not key_text:
        raise bad("missing the key before '='")
    key, _, package = key_text.partition("@")
    if not _KEY_RE.fullmatch(key):
        raise bad(f"'{key}' is not a valid key (dotted names like trainer.max_epochs)")
    if "@" in key_text and not _PACKAGE_RE.fullmatch(package):
        raise bad(f"'{package}' is not a valid package")
    value = _ValueParser(value_text, bad).parse() if sep else None
    return Override(text, action, key, package if "@" in key_text else None, value, bool(sep))


class _ValueParser:
    """Recursive descent over an override value: primitives, quoted strings, [lists], {dicts}."""

    def __init__(self, text: str, bad: Any):
        self.text = text
        self.pos = 0
        self.bad = bad

    def parse(self) -> Any:
        value = self.element(stop="")
        self.skip_space()
        if self.pos < len(self.text):
            if self.text[self.pos] == ",":
                raise self.bad("sweeps (a,b) run several jobs; give one value (quote it if it contains a comma)")
            raise self.bad(f"unexpected '{self.text[self.pos]}' at position {self.pos + 1} of the value")
        return value

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def element(self, stop: str, nested: bool = False) -> Any:
        self.skip_space()
        char = self.text[self.pos : self.pos + 1]
        if nested and (not char or char in ",]}"):
            raise self.bad("empty item inside [...] or {...}")
        if char == "[":
            return self.sequence()
        if char == "{":
            return self.mapping()
        if char in ("'", '"'):
            value = self.quoted()
            self.skip_space()
            if self.pos < len(self.text) and self.text[self.pos] not in ",]}" + stop:
                raise self.bad("text after a quoted string; quote the whole value")
            return value
        if re.match(r"[A-Za-z_]\w*\(", self.text[self.pos :]):
            raise self.bad("sweep functions like choice(...) or range(...) are not supported for a single run")
        return self.primitive(stop)

    def sequence(self) -> list:
        self.pos += 1
        items: list = []
        self.skip_space()
        if self.text[self.pos : self.pos + 1] == "]":
            self.pos += 1
            return items
        while True:
            items.append(self.element(stop="", nested=True))
            self.skip_space()
            char = self.text[self.pos : self.pos + 1]
            if char == ",":
                self.pos += 1
                continue
            if char == "]":
                self.pos += 1
                return items
            raise self.bad("unbalanced '[': expected ',' or ']'")

    def mapping(self) -> dict:
        self.pos += 1
        items: dict = {}
        self.skip_space()
        if self.text[self.pos : self.pos + 1] == "}":
            self.pos += 1
            return items
        while True:
            self.skip_space()
            if self.text[self.pos : self.pos + 1] in ("'", '"', "[", "{"):
                raise self.bad("a dict key must be a plain name or number")
            key = self.primitive(stop=":")
            if self.text[self.pos : self.pos + 1] != ":" or key == "":
                raise self.bad("expected 'key: value' inside {...}")
            self.pos += 1
            items[key] = self.element(stop="", nested=True)
            self.skip_space()
            char = self.text[self.pos : self.pos + 1]
            if char == ",":
                self.pos += 1
                continue
            if char == "}":
                self.pos += 1
                return items
            raise self.bad("unbalanced '{': expected ',' or '}'")

    def quoted(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in (quote, "\\"):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == quote:
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise self.bad(f"unclosed {quote} quote")

    def primitive(self, stop: str) -> Any:
        start = self.pos
        out = []
        escaped = False
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if self.text.startswith("${", self.pos):
                end = _interpolation_end(self.text, self.pos)
                if end < 0:
                    raise self.bad("unclosed '${'")
                out.append(self.text[self.pos : end])
                self.pos = end
                continue
            if char == "\\" and self.pos + 1 < len(self.text) and not self.text.startswith("${", self.pos + 1):
                out.append(self.text[self.pos + 1])
                escaped = True
                self.pos += 2
                continue
            if char in ",]}" or (stop and char in stop):
                break
            if char in "[{":
                raise self.bad(f"unexpected '{char}' inside a value; quote the value")
            if not _UNQUOTED_OK.match(char):
                raise self.bad(f"character '{char}' is not allowed in an unquoted value; quote the value")
            out.append(char)
            self.pos += 1
        raw = "".join(out)
        text = raw.strip(" \t")
        if escaped or "${" in text or self.pos == start and not text:
            return text
        return _typed_primitive(text)


def _typed_primitive(text: str) -> Any:
    """int, float, bool, null or str, by Hydra's rules (``010`` and ``yes`` stay strings)."""
    lowered = text.lower()
    if lowered == "null":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT_RE.fullmatch(text):
        return int(text.replace("_", ""))
    if _FLOAT_RE.fullmatch(text):
        return float(text.replace("_", ""))
    return text


def _interpolation_end(text: str, start: int) -> int:
    """Index just past the ``}`` closing the ``${`` at ``start``, or -1."""
    depth = 0
    pos = start
    quote = None
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"" and depth > 0 and text[pos - 1] in ":, ":
            quote = char
        elif text.startswith("${", pos):
            depth += 1
            pos += 2
            continue
        elif char == "}":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    return -1


# --- defaults lists --------------------------------------------------------------------


@dataclass
class _Default:
    """One entry of a defaults list, or the primary config, or a command-line ``+group=option``."""

    kind: str  # "self", "group" or "config"
    origin: Origin
    group: str = ""  # group as written ("/mtl_dataset", "sub"); for "config": the path as written
    option: Any = None  # option name, None (no selection), or a Path (experiment given as a file)
    package: str | None = None  # "@package" of the entry, relative to the containing config
    optional: bool = False
    override: bool = False
    parent_dir: str = ""
    parent_package: str = ""
    entry_text: str = ""

    def group_path(self) -> str:
        """The folder (relative to a search-path root) the option is looked up in."""
        if self.kind == "config":
            written = self.group.lstrip("/")
            folder = written.rpartition("/")[0]
            if self.group.startswith("/") or not self.parent_dir:
                return folder
            return f"{self.parent_dir}/{folder}" if folder else self.parent_dir
        if self.group.startswith("/") or not self.parent_dir:
            return self.group.lstrip("/")
        return f"{self.parent_dir}/{self.group}"

    def name(self) -> str:
        if self.kind == "config":
            return self.group.rpartition("/")[2]
        return self.option if isinstance(self.option, str) else str(self.option)

    def config_path(self) -> str:
        folder = self.group_path()
        return f"{folder}/{self.name()}" if folder else self.name()

    def final_package(self, header: str | None) -> str:
        """Where the file's content lands in the config (Hydra's package rules)."""
        package = self.package if self.package is not None else header
        if package is None:
            written = self.group.lstrip("/")
            package = (written.rpartition("/")[0] if self.kind == "config" else written).replace("/", ".")
        if not self.parent_package:
            combined = package
        else:
            combined = f"{self.parent_package}.{package}" if package else self.parent_package
        cut = combined.rfind("_global_")
        return combined if cut < 0 else combined[cut + len("_global_") + 1 :]

    def override_key(self) -> str:
        """How overrides name this selection: the group path, plus ``@package`` when moved."""
        group = self.group_path()
        package = self.final_package(header=None)
        if package != group.replace("/", "."):
            return f"{group}@{package or '_global_'}"
        return group


def _package_header(path: Path) -> str | None:
    """``# @package X`` at the top of a file (before any other line, as Hydra reads it), made absolute."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None  # load_yaml reports the problem with a position
    header = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if number == 1 and re.match(r"\ufeff\s*#\s*@package\b", line):
            # Hydra reads the header without skipping a byte-order mark, so it would ignore
            # this one and put the file's keys under another package.
            raise ConfigError("the file starts with a byte-order mark, which hides its '# @package' header",
                              Origin(display_path(path), 1, 1), "save the file as UTF-8 without BOM")
        if not re.match(r"#\s*@", line):
            break
        parts = line.lstrip("#").split()
        if parts and parts[0] == "@package":
            if len(parts) != 2:
                problem = "needs a package name" if len(parts) == 1 else "takes one package name"
                raise ConfigError(f"'# @package' header {problem}, got {line!r}",
                                  Origin(display_path(path), number, raw.index("@") + 1),
                                  "e.g. '# @package _global_'")
            header = parts[1]
    if header is None:
        return None
    if header == "_global_" or header.startswith("_global_."):
        return header
    return f"_global_.{header}" if header else "_global_"


def _parse_defaults(data: Any, path: str) -> list[_Default] | None:
    """The ``defaults:`` list of a loaded file, or None when it has none."""
    if not isinstance(data, dict) or "defaults" not in data:
        return None
    items = data["defaults"]
    if not isinstance(items, list):
        raise ConfigError("'defaults' must be a list (lines starting with '- ')", value_origin(path, data, "defaults"))
    entries = []
    for index, item in enumerate(items):
        where = value_origin(path, items, index)
        if isinstance(item, str):
            text = item.strip()
            if text == "_self_":
                entries.append(_Default("self", where, entry_text=text))
                continue
            config, _, package = text.partition("@")
            entries.append(_Default("config", where, group=config, package=package if "@" in text else None, entry_text=text))
            continue
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError("a defaults entry must be '- group: option', '- _self_' or '- config_name'", where)
        (written, option), = item.items()
        where = value_origin(path, item, written)
        words = str(written).split()
        if not words:
            raise ConfigError("missing config group name in defaults entry", where)
        flags, group_text = words[:-1], words[-1]
        for flag in flags:
            if flag not in ("optional", "override"):
                raise ConfigError(f"unknown keyword '{flag}' in defaults entry (expected 'optional' or 'override')", key_origin(path, item, written))
        group, _, package = group_text.partition("@")
        if isinstance(option, list):
            raise ConfigError("a list of options in a defaults entry is not supported; select one option", where)
        if option is not None and not isinstance(option, str):
            raise ConfigError(f"the option of '{group}' must be a config name, got {to_plain(option)!r}", where)
        if isinstance(option, str) and "${" in option:
            raise ConfigError("interpolation in a defaults list is not supported", where)
        entries.append(
            _Default(
                "group",
                where,
                group=group,
                option=str(option) if option is not None else None,
                package=package if "@" in group_text else None,
                optional="optional" in flags,
                override="override" in flags,
                entry_text=f"{written}: {option}",
            )
        )
    return entries


@dataclass
class _Choice:
    option: Any
    origin: Origin
    external: bool
    used: bool = False
    text: str = ""


@dataclass
class _Leaf:
    """One file's own content and where it lands; leaves are merged in order."""

    path: Path
    package: str
    data: Any
    key_origin: Origin


class _DefaultsExpander:
    """Turns the primary config's defaults tree into the ordered list of files to merge."""

    def __init__(self, roots: list[Path]):
        self.roots = roots
        self.cache: dict[Path, Any] = {}
        self.choices: dict[str, _Choice] = {}  # override key -> forced option
        self.deletions: dict[str, _Choice] = {}
        self.appended: list[_Default] = []
        self.selected: dict[str, tuple[Any, Origin]] = {}  # override key -> (option, where selected)
        self.expanding: list[Path] = []  # files whose defaults are being expanded, to catch loops

    def load(self, path: Path) -> Any:
        if path not in self.cache:
            try:
                data = load_yaml(path)
            except ConfigError as err:
                if err.message != "empty file":
                    raise
                data = {}  # Hydra reads an empty file as an empty config
            if not isinstance(data, dict):
                raise ConfigError("a config file must be a mapping of keys to values", node_origin(display_path(path), data))
            self.cache[path] = data
        return self.cache[path]

    def expand(self, entry: _Default, path: Path, package: str, primary: bool = False) -> list[_Leaf]:
        shown = display_path(path)
        data = self.load(path)
        defaults = _parse_defaults(data, shown)
        own = _Leaf(path, package, data, entry.origin)
        if not defaults and not (primary and self.appended):
            return [own]
        defaults = list(defaults or [])
        selves = [d for d in defaults if d.kind == "self"]
        if len(selves) > 1:
            raise ConfigError("_self_ appears twice in the defaults list", selves[1].origin)
        if not selves:
            defaults.append(_Default("self", entry.origin))  # Hydra 1.1+: own content last
        if primary:
            defaults.extend(self.appended)
        group_dir = entry.group_path()
        self._register_overrides(defaults, group_dir, package)

        parts: list[list[_Leaf]] = []
        for default in reversed(defaults):  # last first, so later overrides reach earlier entries
            if default.kind == "self":
                parts.append([own])
                continue
            if default.override:
                continue
            default.parent_dir, default.parent_package = group_dir, package
            parts.append(self._expand_child(default))
        return [leaf for part in reversed(parts) for leaf in part]

    def _register_overrides(self, defaults: list[_Default], group_dir: str, package: str) -> None:
        seen_override: _Default | None = None
        for default in defaults:
            if default.kind == "self":
                continue
            default.parent_dir, default.parent_package = group_dir, package
            if default.override:
                seen_override = default
                key = default.override_key()
                if key not in self.choices:  # the command line and outer files win
                    self.choices[key] = _Choice(default.option, default.origin, external=False, text=default.entry_text)
            elif seen_override is not None and default not in self.appended:
                raise ConfigError(
                    f"'override {seen_override.group}' must come after all other entries of the defaults list",
                    seen_override.origin,
                )

    def _expand_child(self, default: _Default) -> list[_Leaf]:
        key = default.override_key() if default.kind == "group" else None
        if key is not None and key in self.choices:
            choice = self.choices[key]
            choice.used = True
            default.option = choice.option
            default.origin = choice.origin
        if key is not None and key in self.deletions:
            deletion = self.deletions[key]
            if deletion.option is None or _option_name(str(deletion.option)) == _option_name(default.name()):
                deletion.used = True
                return []
        if key is not None:
            if key in self.selected and (default.option is not None or self.selected[key][0] is not None):
                first = self.selected[key][1]
                raise ConfigError(
                    f"config group '{key}' is selected twice (also at {first}); use 'override {key}: OPTION' to change a selection",
                    default.origin,
                )
            self.selected[key] = (default.option, default.origin)
        if default.kind == "group" and default.option is None:
            return []
        if default.kind == "group" and default.option == MISSING:
            options = ", ".join(list_group_options(default.group_path(), self.roots))
            raise ConfigError(f"no option chosen for config group '{key}' (???); choose one with {key}=OPTION", default.origin, f"available: {options}")
        path = default.option if isinstance(default.option, Path) else _find_config(default.config_path(), self.roots)
        if path is None:
            if default.optional:
                return []
            if default.kind == "config":
                raise ConfigError(f"config '{default.config_path()}' not found in the config search path", default.origin)
            raise _unknown_option_error(default.group_path(), default.name(), self.roots, default.origin)
        if path in self.expanding:
            loop = " -> ".join(display_path(p) for p in [*self.expanding[self.expanding.index(path) :], path])
            raise ConfigError(f"the defaults lists include each other in a loop: {loop}", default.origin)
        package = default.final_package(_package_header(path))
        self.expanding.append(path)
        try:
            return self.expand(default, path, package)
        finally:
            self.expanding.pop()

    def check_all_used(self) -> None:
        for key, choice in self.choices.items():
            if not choice.used:
                if choice.external:
                    raise ConfigError(
                        f"override '{choice.text}': config group '{key}' is not in the defaults list; to add it use '+{choice.text}'",
                        COMMAND_LINE,
                    )
                raise ConfigError(f"'override {key}' matches no selection of '{key}' in the defaults lists", choice.origin)
        for key, deletion in self.deletions.items():
            if not deletion.used:
                raise ConfigError(f"override '{deletion.text}': config group '{key}' is not selected, nothing to delete", COMMAND_LINE)


# --- applying key overrides --------------------------------------------------------------


def _apply_override(root: _Node, override: Override) -> None:
    parts = override.key.split(".")
    node = root
    for depth, part in enumerate(parts[:-1]):
        child = _child(node, part)
        if child is None and override.action in ("add", "force") and isinstance(node.value, dict):
            child = _Node({}, override.origin)
            node.value[part] = child
        if child is None:
            raise _no_such_key(override, node, parts, depth)
        if not isinstance(child.value, (dict, list)):
            raise ConfigError(
                f"override '{override.text}': '{'.'.join(parts[: depth + 1])}' is {child.value!r}, not a mapping", COMMAND_LINE
            )
        node = child
    last = parts[-1]
    current = _child(node, last)
    if override.action == "delete":
        if current is None:
            raise _no_such_key(override, node, parts, len(parts) - 1)
        if override.has_value and current.plain() != override.value:
            raise ConfigError(
                f"override '{override.text}': the value of '{override.key}' is {current.plain()!r}, not {override.value!r}",
                COMMAND_LINE,
            )
        _remove(node, last)
        return
    incoming = _node_from_plain(override.value, override.origin)
    if override.action == "set":
        if current is None:
            raise _no_such_key(override, node, parts, len(parts) - 1)
        if isinstance(current.value, dict) and isinstance(incoming.value, dict):
            _check_keys_exist(current, incoming, override)
    elif override.action == "add" and current is not None and current.value is not None and not isinstance(incoming.value, (dict, list)):
        raise ConfigError(
            f"override '{override.text}': '{override.key}' already exists; use '{override.text[1:]}' to change it or '+{override.text}' to set it either way",
            COMMAND_LINE,
        )
    if current is not None and isinstance(current.value, dict) and isinstance(incoming.value, dict):
        _merge(current, incoming)
        return
    if current is not None:
        incoming.key_origin = current.key_origin if override.action == "set" else override.origin
    _assign(node, last, incoming, override)


def _check_keys_exist(current: _Node, incoming: _Node, override: Override) -> None:
    for key, child in incoming.value.items():
        existing = _child(current, key)
        if existing is None:
            raise ConfigError(
                f"override '{override.text}': no key '{key}' in '{override.key}'; to add it use '+{override.text}'", COMMAND_LINE
            )
        if isinstance(existing.value, dict) and isinstance(child.value, dict):
            _check_keys_exist(existing, child, override)


def _no_such_key(override: Override, node: _Node, parts: list[str], depth: int) -> ConfigError:
    where = f"in '{'.'.join(parts[:depth])}'" if depth else "in the config"
    message = f"override '{override.text}': no key '{parts[depth]}' {where}"
    keys = [str(k) for k in node.value] if isinstance(node.value, dict) else []
    guess = _did_you_mean(parts[depth], keys)
    if guess:
        message += f"; did you mean '{'.'.join(parts[:depth] + [guess])}'?"
    elif override.action == "set":
        message += f"; to add it use '+{override.text}'"
    return ConfigError(message, COMMAND_LINE)


def _assign(node: _Node, part: str, child: _Node, override: Override) -> None:
    if isinstance(node.value, list):
        index = int(part) if re.fullmatch(r"\d+", part) else -1
        if not 0 <= index < len(node.value):
            raise ConfigError(f"override '{override.text}': index {part} is outside the list", COMMAND_LINE)
        node.value[index] = child
        return
    key: Any = part
    if part not in node.value and re.fullmatch(r"-?\d+", part) and int(part) in node.value:
        key = int(part)
    node.value[key] = child


def _remove(node: _Node, part: str) -> None:
    if isinstance(node.value, list):
        del node.value[int(part)]
    elif part in node.value:
        del node.value[part]
    else:
        del node.value[int(part)]


# --- interpolation ---------------------------------------------------------------------


class _Resolver:
    """Resolves ``${...}`` everywhere; each value is resolved once and cycles are caught."""

    def __init__(self, root: _Node, now: datetime):
        self.root = root
        self.now = now
        self.done: dict[tuple, Any] = {}
        self.active: list[tuple] = []

    def resolve_tree(self) -> Any:
        return self.resolve(self.root, ())

    def resolve(self, node: _Node, path: tuple) -> Any:
        if path in self.done:
            return self.done[path]
        if path in self.active:
            cycle = self.active[self.active.index(path) :] + [path]
            nodes = [self._node_at(p) for p in cycle]
            written = next(n for n in nodes if isinstance(n.value, str) and "${" in n.value)
            raise ConfigError(
                "interpolation cycle: " + " -> ".join(".".join(map(str, p)) or "<root>" for p in cycle), written.origin
            )
        self.active.append(path)
        try:
            if isinstance(node.value, dict):
                value: Any = {key: self.resolve(child, path + (key,)) for key, child in node.value.items()}
            elif isinstance(node.value, list):
                value = [self.resolve(child, path + (index,)) for index, child in enumerate(node.value)]
            elif isinstance(node.value, str) and "${" in node.value:
                value = self.interpolate(node.value, node, path)
            else:
                value = node.value
        finally:
            self.active.pop()
        self.done[path] = value
        return value

    def _node_at(self, path: tuple) -> _Node:
        node = self.root
        for part in path:
            node = _child(node, part)  # type: ignore[assignment]
        return node

    def interpolate(self, text: str, node: _Node, path: tuple) -> Any:
        """The value of a string holding interpolations; ``${x}`` alone keeps x's type."""
        pieces = list(self._split(text, node))
        if len(pieces) == 1 and isinstance(pieces[0], tuple):
            return self.evaluate(pieces[0][1], node, path)
        out = []
        for piece in pieces:
            out.append(piece if isinstance(piece, str) else str(self.evaluate(piece[1], node, path)))
        return "".join(out)

    def _split(self, text: str, node: _Node) -> Iterator[str | tuple]:
        pos = 0
        literal = []
        while pos < len(text):
            if text.startswith("\\${", pos):
                literal.append("${")
                pos += 3
                continue
            if text.startswith("\\\\${", pos):
                literal.append("\\")
                pos += 2
                continue
            if text.startswith("${", pos):
                end = _interpolation_end(text, pos)
                if end < 0:
                    raise ConfigError(f"unclosed '${{' in {text!r}", node.origin)
                if literal:
                    yield "".join(literal)
                    literal = []
                yield ("interp", text[pos + 2 : end - 1])
                pos = end
                continue
            literal.append(text[pos])
            pos += 1
        if literal:
            yield "".join(literal)

    def evaluate(self, inner: str, node: _Node, path: tuple) -> Any:
        inner = inner.strip()
        name, colon, args = inner.partition(":")
        if colon and re.fullmatch(r"[A-Za-z_][\w.]*", name.strip()):
            return self.call(name.strip(), self.arguments(args, node, path), inner, node)
        return self.reference(inner, node, path)

    def reference(self, key: str, node: _Node, path: tuple) -> Any:
        parsed = _key_parts(key)
        if parsed is None:
            raise ConfigError(f"'${{{key}}}' is not a valid interpolation", node.origin)
        ups, parts = parsed
        if ups > len(path):
            raise ConfigError(f"'${{{key}}}' goes above the top of the config", node.origin)
        base = list(path[: len(path) - ups]) if ups else []  # ${.x}: a sibling; ${..x}: the parent's sibling
        target = self._node_at(tuple(base))
        full = base
        for part in parts:
            step = _step(target, part)
            if step is None:
                known = [str(k) for k in target.value] if isinstance(target.value, dict) else []
                guess = _did_you_mean(str(part), known)
                missing = ".".join(map(str, full + [part]))
                raise ConfigError(
                    f"interpolation '${{{key}}}': key '{missing}' not found" + (f"; did you mean '{guess}'?" if guess else ""),
                    node.origin,
                )
            target, actual = step
            full = full + [actual]
        if target.value == MISSING:
            raise ConfigError(f"interpolation '${{{key}}}' refers to '{'.'.join(map(str, full))}', which has no value (???)", node.origin)
        return self.resolve(target, tuple(full))

    def select(self, key: str, default: Any, node: _Node) -> Any:
        """``oc.select``: like a reference, but a missing key gives ``default``."""
        parsed = _key_parts(key)
        if parsed is None or parsed[0]:
            raise ConfigError(f"oc.select needs an absolute key, got '{key}'", node.origin)
        target: _Node | None = self.root
        for part in parsed[1]:
            step = _step(target, part) if target is not None else None
            target = step[0] if step else None
        if target is None or target.value == MISSING:
            return default
        return self.reference(key, node, ())

    def arguments(self, text: str, node: _Node, path: tuple) -> list:
        args = []
        for raw in _split_arguments(text):
            stripped = raw.strip(" \t")
            if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
                quoted = stripped[1:-1].replace("\\" + stripped[0], stripped[0])
                args.append(self.interpolate(quoted, node, path) if "${" in quoted else quoted)
            elif "${" in stripped:
                args.append(self.interpolate(stripped, node, path))
            else:
                args.append(_typed_primitive(re.sub(r"\\(.)", r"\1", stripped)))
        return args

    def call(self, name: str, args: list, inner: str, node: _Node) -> Any:
        if name == "now":
            if len(args) != 1:
                raise ConfigError(f"'${{{inner}}}' needs exactly one strftime format, e.g. ${{now:%Y-%m-%d}}", node.origin)
            return self.now.strftime(str(args[0]))
        if name == "oc.env":
            if not 1 <= len(args) <= 2:
                raise ConfigError(f"'${{{inner}}}' takes a variable name and an optional default", node.origin)
            variable = str(args[0])
            if variable in os.environ:
                return os.environ[variable]
            if len(args) == 2:
                return None if args[1] is None else str(args[1])
            raise ConfigError(f"environment variable '{variable}' is not set (give a default: ${{oc.env:{variable},DEFAULT}})", node.origin)
        if name == "oc.select":
            if not 1 <= len(args) <= 2:
                raise ConfigError(f"'${{{inner}}}' takes a key and an optional default", node.origin)
            return self.select(str(args[0]), args[1] if len(args) == 2 else None, node)
        raise ConfigError(f"unknown resolver '{name}' in '${{{inner}}}' (known: now, oc.env, oc.select)", node.origin)


def _key_parts(key: str) -> tuple[int, list] | None:
    """``..a.b[0]`` -> (2, ["a", "b", 0]); None when malformed."""
    stripped = key.lstrip(".")
    ups = len(key) - len(stripped)
    if not stripped:
        return None
    parts: list = []
    for token in stripped.split("."):
        match = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", token)
        if match is None or (not match.group(1) and not match.group(2)):
            return None
        if match.group(1):
            parts.append(match.group(1))
        parts.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group(2)))
    return ups, parts


def _split_arguments(text: str) -> list[str]:
    if not text.strip():
        return []
    args, current, pos, quote = [], [], 0, None
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\" and pos + 1 < len(text):
                current.append(text[pos : pos + 2])
                pos += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"" and not "".join(current).strip():
            quote = char
        elif text.startswith("${", pos):
            end = _interpolation_end(text, pos)
            current.append(text[pos:end])
            pos = end
            continue
        elif char == "\\" and pos + 1 < len(text):
            current.append(text[pos : pos + 2])
            pos += 2
            continue
        elif char == ",":
            args.append("".join(current))
            current = []
            pos += 1
            continue
        current.append(char)
        pos += 1
    args.append("".join(current))
    return args


# --- compose ---------------------------------------------------------------------------


def compose(
    experiment: str,
    overrides: list[str] | None = None,
    search_path: list[Path] | None = None,
    *,
    now: datetime | None = None,
    resolve: bool = True,
) -> Composed:
    """Compose ``experiment`` (a name in ``configs/experiment/`` or a YAML file) with overrides.

    ``now`` fixes the time ``${now:...}`` shows (one instant per call either way);
    ``resolve=False`` keeps ``${...}`` strings as written, for checking configs.
    """
    roots = [Path(root) for root in (_default_search_path() if search_path is None else search_path)]
    parsed = [parse_override(text) for text in overrides or []]
    expander = _DefaultsExpander(roots)
    expander.choices[EXPERIMENT_GROUP] = _Choice(_experiment_option(experiment, roots), COMMAND_LINE, external=True, text=f"experiment={experiment}")

    key_overrides = []
    for override in parsed:
        is_group = override.package is not None or (
            _group_exists(override.key, roots) and not isinstance(override.value, (dict, list))
        )
        if not is_group:
            key_overrides.append(override)
            continue
        _register_group_override(expander, override, roots)

    primary_path = _find_config(PRIMARY_CONFIG, roots)
    if primary_path is None:
        raise ConfigError(f"{PRIMARY_CONFIG}.yaml not found in the config search path ({', '.join(map(str, roots))})", COMMAND_LINE)
    primary = _Default("config", Origin(display_path(primary_path)), group=PRIMARY_CONFIG)
    expander.expanding.append(primary_path)
    leaves = expander.expand(primary, primary_path, primary.final_package(_package_header(primary_path)), primary=True)
    expander.check_all_used()

    root = _Node({}, Origin(display_path(primary_path), 1, 1))
    files: list[Path] = []
    for leaf in leaves:
        shown = display_path(leaf.path)
        node = _node_from_yaml(leaf.data, shown, node_origin(shown, leaf.data), leaf.key_origin)
        node.value.pop("defaults", None)
        for part in reversed(leaf.package.split(".") if leaf.package else []):
            node = _Node({part: node}, node.origin, leaf.key_origin)
        _merge(root, node)
        if leaf.path not in files:
            files.append(leaf.path)
    # Hydra's own settings (run dir, logging) mean nothing here; Hydra drops them from compose results too.
    root.value.pop("hydra", None)

    for override in key_overrides:
        _apply_override(root, override)

    choices = {key: (None if option is None else str(option) if isinstance(option, Path) else _option_name(option)) for key, (option, _) in expander.selected.items()}
    if resolve:
        config = _Resolver(root, now or datetime.now()).resolve_tree()
    else:
        config = root.plain()
    return Composed(config=config, files=files, choices=choices, resolved=resolve, _root=root)


def _experiment_option(experiment: str, roots: list[Path]) -> Any:
    """A name of ``configs/experiment/NAME.yaml``, or a path to a YAML file."""
    if not experiment or not experiment.strip():
        raise ConfigError("no experiment given", COMMAND_LINE, f"available: {', '.join(list_group_options(EXPERIMENT_GROUP, roots))}")
    as_path = Path(experiment).expanduser()
    looks_like_path = os.sep in experiment or "/" in experiment or experiment.endswith((".yaml", ".yml"))
    if looks_like_path and as_path.is_file():
        return as_path.resolve()
    if _find_config(f"{EXPERIMENT_GROUP}/{experiment}", roots) is not None:
        return experiment
    if as_path.is_file():  # an existing file, whatever its name, rather than "unknown experiment"
        return as_path.resolve()
    if as_path.exists() or as_path.is_symlink():
        what = "a folder" if as_path.is_dir() else "a broken or looping link" if not as_path.exists() else "not a regular file"
        raise ConfigError(f"experiment file '{experiment}' is {what}", COMMAND_LINE,
                          "give a YAML file or the name of a config in configs/experiment/")
    if looks_like_path and not _find_config(f"{EXPERIMENT_GROUP}/{as_path.name}", roots):
        raise ConfigError(f"experiment file '{experiment}' not found", COMMAND_LINE)
    raise _unknown_option_error(EXPERIMENT_GROUP, experiment, roots, COMMAND_LINE, what=f"experiment '{experiment}'")


def _register_group_override(expander: _DefaultsExpander, override: Override, roots: list[Path]) -> None:
    group = override.key
    if override.package is not None and not _group_exists(group, roots):
        raise ConfigError(f"override '{override.text}': '{group}' is not a config group", COMMAND_LINE)
    key = f"{group}@{override.package or '_global_'}" if override.package is not None and override.package != group.replace("/", ".") else group
    option = override.value
    if isinstance(option, (int, float, bool)):
        option = override.text.partition("=")[2].strip()
    if override.action == "force":
        raise ConfigError(f"override '{override.text}': '++' is for keys; a config group is added with '+{override.text[2:]}'", COMMAND_LINE)
    if override.action == "delete":
        expander.deletions[key] = _Choice(option if override.has_value else None, COMMAND_LINE, external=True, text=override.text)
        return
    if option is not None and not _find_config(f"{group}/{option}", roots):
        raise _unknown_option_error(group, option, roots, COMMAND_LINE)
    if override.action == "add":
        expander.appended.append(
            _Default("group", override.origin, group=group, option=option, package=override.package, entry_text=override.text)
        )
        return
    origin = override.origin if key != EXPERIMENT_GROUP else COMMAND_LINE
    expander.choices[key] = _Choice(option, origin, external=True, text=override.text)
