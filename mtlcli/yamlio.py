"""Read and write YAML with positions, so config errors can say ``path:line:col``.

Loading uses ruamel.yaml's round-trip mode: mappings and sequences come back as
``CommentedMap``/``CommentedSeq`` that remember where each key and value was
written. Scalars follow YAML 1.1 (``yes``/``on`` are booleans, ``010`` is octal),
because that is what Hydra/OmegaConf read, and configs written for CLArena must
mean the same thing here. Dates stay strings, as in OmegaConf.

Positions in :class:`~mtlcli.errors.Origin` are 1-based; ruamel's are 0-based.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.resolver import VersionedResolver

from mtlcli.errors import ConfigError, MtlcliError, Origin

__all__ = [
    "load_yaml",
    "load_yaml_text",
    "dump_yaml",
    "atomic_write_text",
    "display_path",
    "key_origin",
    "value_origin",
    "node_origin",
    "to_plain",
]


class _Constructor(RoundTripConstructor):
    """Round-trip constructor that keeps timestamps as the text the user wrote."""


_Constructor.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda constructor, node: constructor.construct_scalar(node)
)


class _Resolver(VersionedResolver):
    """YAML 1.1 as PyYAML (hence OmegaConf) reads it: ``y``/``n`` stay strings, unlike ruamel's 1.1."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        tag = super().resolve(kind, value, implicit)
        if kind is ScalarNode and value in ("y", "Y", "n", "N"):
            return self.DEFAULT_SCALAR_TAG
        return tag


def _reader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.version = (1, 1)
    yaml.Resolver = _Resolver
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    return yaml


def display_path(path: str | os.PathLike) -> str:
    """The path as a user wants to read it: relative to the working folder when inside it."""
    path = Path(path)
    try:
        # The folder resolved, not the name: a linked file is shown under the name the user
        # gave it (a broken link's target would name a file that they do not have).
        return str((path.parent.resolve() / path.name).relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return str(path)


def load_yaml(path: str | os.PathLike) -> Any:
    """Load a YAML file with positions; any problem becomes a one-line :class:`ConfigError`."""
    shown = display_path(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", Origin(shown)) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, expected a YAML file", Origin(shown)) from None
    except OSError as err:
        raise ConfigError(f"cannot read file: {err.strerror}", Origin(shown)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, col = _byte_position(raw, err.start)
        raise ConfigError(
            f"not valid UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8",
            Origin(shown, line, col),
        ) from None
    return load_yaml_text(text, shown)


def load_yaml_text(text: str, path: str) -> Any:
    """Load YAML text that came from ``path`` (used in messages only)."""
    text = text.removeprefix("\ufeff")
    try:
        with warnings.catch_warnings():
            # YAML 1.1 wants a dot in floats (1e-3); OmegaConf accepts them silently, so do we.
            warnings.simplefilter("ignore")
            data = _reader().load(text)
    except DuplicateKeyError as err:
        key = _duplicate_key_name(err)
        raise ConfigError(f"duplicate key {key}", _mark_origin(path, err.problem_mark)) from None
    except MarkedYAMLError as err:
        raise ConfigError(_syntax_message(err), _mark_origin(path, err.problem_mark or err.context_mark)) from None
    except ReaderError as err:
        line, col = _text_position(text, err.position)
        raise ConfigError(
            f"invalid YAML: character {err.character!r} is not allowed in YAML text", Origin(path, line, col)
        ) from None
    except YAMLError as err:  # anything else ruamel reports without a position
        raise ConfigError(f"invalid YAML: {err}".splitlines()[0], Origin(path)) from None
    if data is None:
        raise ConfigError("empty file", Origin(path))
    return data


def _duplicate_key_name(err: DuplicateKeyError) -> str:
    # ruamel: 'found duplicate key "a" with value "2" (original value: "1")'
    problem = err.problem or ""
    start = problem.find('"')
    end = problem.find('"', start + 1)
    return problem[start : end + 1] if start >= 0 and end > start else "in mapping"


_PLAIN_PROBLEMS = {
    "found character '\\t' that cannot start any token": "tab character; YAML indentation must use spaces",
    "mapping values are not allowed here": "unexpected ':' (bad indentation, or a value containing ': ' that needs quotes)",
}


def _syntax_message(err: MarkedYAMLError) -> str:
    problem = (err.problem or "syntax error").strip()
    message = "invalid YAML: " + _PLAIN_PROBLEMS.get(problem, problem)
    if err.context and err.context_mark is not None and err.problem_mark is not None:
        if (err.context_mark.line, err.context_mark.column) != (err.problem_mark.line, err.problem_mark.column):
            message += f" ({err.context.strip()} started at {err.context_mark.line + 1}:{err.context_mark.column + 1})"
    return " ".join(message.split())


def _mark_origin(path: str, mark: Any) -> Origin:
    if mark is None:
        return Origin(path)
    return Origin(path, mark.line + 1, mark.column + 1)


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    col = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return line, col


def _text_position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


# --- positions inside a loaded node -------------------------------------------------


def node_origin(path: str, node: Any) -> Origin:
    """Where a mapping or sequence starts; just the file for anything else."""
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return Origin(path, lc.line + 1, lc.col + 1)
    return Origin(path)


def key_origin(path: str, mapping: Any, key: Any) -> Origin:
    """Where ``key`` is written in ``mapping`` (a loaded ``CommentedMap``)."""
    try:
        line, col = mapping.lc.key(key)
    except (AttributeError, KeyError, TypeError):
        return node_origin(path, mapping)
    return Origin(path, line + 1, col + 1)


def value_origin(path: str, container: Any, key_or_index: Any) -> Origin:
    """Where the value at ``key_or_index`` of a loaded mapping or sequence is written.

    For a nested block mapping this is the position of its first key.
    """
    try:
        if isinstance(container, CommentedSeq):
            line, col = container.lc.item(key_or_index)
        else:
            line, col = container.lc.value(key_or_index)
    except (AttributeError, KeyError, IndexError, TypeError):
        return node_origin(path, container)
    return Origin(path, line + 1, col + 1)


def to_plain(node: Any) -> Any:
    """A loaded node as plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``."""
    if isinstance(node, dict):
        return {to_plain(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [to_plain(item) for item in node]
    if isinstance(node, bool) or node is None:
        return node if node is None else bool(node)
    if isinstance(node, int):
        return bool(node) if type(node).__name__ == "ScalarBoolean" else int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (date, datetime)):
        return node.isoformat()
    return node


# --- writing -------------------------------------------------------------------------


class _Representer(RoundTripRepresenter):
    """Writes ``null`` for None and quotes strings a YAML 1.1 reader would misread."""

    def represent_none(self, data: Any) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:null", "null")

    def represent_str(self, data: str) -> Any:
        # The dumper decides quoting with YAML 1.2 rules; our reader (and OmegaConf)
        # use 1.1, where ``yes``, ``on``, ``010`` or ``1:30`` are not strings.
        implicit_tag = _YAML11.resolve(ScalarNode, data, (True, False))
        style = "'" if implicit_tag != "tag:yaml.org,2002:str" and "\n" not in data else None
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Representer.add_representer(type(None), _Representer.represent_none)
_Representer.add_representer(str, _Representer.represent_str)
_YAML11 = _Resolver(version=(1, 1))


def dump_yaml(data: Any) -> str:
    """YAML text for plain data; loading it back (with :func:`load_yaml_text`) gives equal data.

    Mappings are written as indented blocks and lists of scalars inline
    (``hidden_dims: [256, 100]``), as a person would write them.
    """
    yaml = YAML(typ="rt")
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.width = 4096  # long strings stay on one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    yaml.dump(_for_dump(data), stream)
    return stream.getvalue()


def _for_dump(data: Any) -> Any:
    # Mappings as indented blocks, lists of scalars inline: how a person writes configs.
    if isinstance(data, dict):
        mapping = CommentedMap((key, _for_dump(value)) for key, value in data.items())
        mapping.fa.set_block_style()
        return mapping
    if isinstance(data, (list, tuple)):
        sequence = CommentedSeq(_for_dump(item) for item in data)
        if all(_is_simple_scalar(item) for item in data):
            sequence.fa.set_flow_style()
        else:  # the emitter's quoting in flow style misses cases such as '?x'
            sequence.fa.set_block_style()
        return sequence
    return data


def _is_simple_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return re.fullmatch(r"[\w][\w.\-/]*", value) is not None
    return value is None or isinstance(value, (bool, int, float))


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool) -> None:
    """Write ``text`` to ``path`` all at once: a reader never sees half a file.

    Refuses to replace an existing file unless ``overwrite`` (the CLI's ``--force``).
    Missing parent folders are created.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise MtlcliError(f"{display_path(path)} already exists (use --force to overwrite it)")
    if path.is_dir():
        raise MtlcliError(f"{display_path(path)} is a folder, cannot write a file there")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with mode 0o666 lets the umask decide permissions, like a plain open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                _publish_without_clobbering(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    except OSError as err:  # disk full, read-only or missing folder: the old file (if any) is untouched
        raise MtlcliError(f"cannot write {display_path(path)}: {err.strerror or err}") from err


def _publish_without_clobbering(tmp: Path, path: Path) -> None:
    # A hard link fails if ``path`` appeared since the check above, so a file another
    # process just wrote is never replaced. Some file systems have no hard links.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise MtlcliError(f"{display_path(path)} already exists (use --force to overwrite it)") from None
    except OSError:
        if path.exists():
            raise MtlcliError(f"{display_path(path)} already exists (use --force to overwrite it)") from None
        os.replace(tmp, path)
