"""Python default values as YAML text that loads back to the same value.

Generated configs are read by mtlcli (ruamel, YAML 1.1 rules), by Hydra/OmegaConf
and by plain PyYAML; a default must mean the same to all of them. So: strings are
written plain only when they cannot be misread (``yes``, ``null``, ``1e3``,
``a: b``, ``#x`` and leading spaces are quoted), floats always carry a dot before
the exponent (``1.0e-08``: YAML 1.1 reads ``1e-08`` as a string), tuples become
lists and enums their value. Anything else raises :class:`Unwritable` with the
reason, and the caller writes the field commented out.
"""

from __future__ import annotations

import enum
import math
import pathlib
import re
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")
# Words some YAML reader turns into a bool or null (1.1 booleans, 1.2 core, 'None' for clarity).
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none", "nan", "inf"}


class Unwritable(Exception):
    """A value YAML cannot hold; ``str(err)`` says what it is."""


def yaml_value(value: Any) -> str:
    """``value`` as YAML flow text (one line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        try:
            return yaml_value(value.value)
        except Unwritable:
            raise Unwritable(f"the enum member {type(value).__name__}.{value.name}, whose value YAML cannot hold") from None
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, str):
        return string_text(value)
    if isinstance(value, pathlib.PurePath):
        return string_text(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float, enum.Enum))):
                raise Unwritable(f"a mapping with a {type(key).__name__} key")
            items.append(f"{yaml_value(key)}: {yaml_value(item)}")
        return "{" + ", ".join(items) + "}"
    raise Unwritable(describe_object(value))


def describe_object(value: Any) -> str:
    """A stable description of an object (no memory addresses, so output is reproducible)."""
    name = getattr(value, "__qualname__", None)
    module = getattr(value, "__module__", None)
    if callable(value) and name:
        kind = "class" if isinstance(value, type) else "function"
        return f"a {kind} ({module}.{name})" if module else f"a {kind} ({name})"
    return f"a {type(value).__module__}.{type(value).__qualname__} object"


def float_text(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def string_text(text: str) -> str:
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return double_quoted(text)


def double_quoted(text: str) -> str:
    """A YAML double-quoted scalar; escapes everything a reader could fold or drop."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif _printable(code):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02X}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    out.append('"')
    return "".join(out)


def _printable(code: int) -> bool:
    # YAML's printable set, minus the line breaks (NEL, LS, PS) and the BOM, which a
    # double-quoted scalar would fold or lose.
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029)
        or 0xE000 <= code <= 0xFFFD and code != 0xFEFF
        or 0x10000 <= code <= 0x10FFFF
    )


def plain_data(value: Any) -> Any:
    """What :func:`yaml_value` text loads back as: tuples as lists, enums as their values."""
    if isinstance(value, enum.Enum):
        return plain_data(value.value)
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, dict):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, pathlib.PurePath):
        return str(value)
    return value
