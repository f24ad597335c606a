"""Per-argument descriptions from a docstring, so generated configs explain each field.

Three styles are read, because that is what MTL code in the wild uses:

* Google: an ``Args:`` (``Arguments:``, ``Parameters:``, ``Keyword Args:``) section
  with ``name (type): text`` or ``name: text`` entries;
* NumPy: a ``Parameters`` section underlined with dashes, ``name : type`` lines
  with the text indented below;
* CLArena: bullet entries ``- **name** (`type`): text`` anywhere in the docstring.

Each description is the entry's first paragraph collapsed into one line.
"""

from __future__ import annotations

import inspect
import re

_GOOGLE_HEADER = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters)\s*:\s*$"
)
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(\(.*?\))?\s*:(?:\s+(.*))?$")
_NUMPY_SECTIONS = {"parameters", "other parameters", "keyword arguments"}
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(:.*)?$")
_CLARENA_ENTRY = re.compile(r"^\s*[-*]\s+\*\*(\w+)\*\*\s*(\(.*?\))?\s*:(?:\s+(.*))?$")


def parse_arg_docs(doc: str | None) -> dict[str, str]:
    """Argument name -> one-line description, from any of the supported styles."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    found: dict[str, str] = {}
    for parser in (_google, _numpy, _clarena):
        for name, text in parser(lines).items():
            found.setdefault(name, text)
    return found


def summary_line(doc: str | None) -> str:
    """The docstring's first paragraph as one line ('' when there is none)."""
    if not doc:
        return ""
    paragraph = []
    for line in inspect.cleandoc(doc).splitlines():
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    return _one_line(paragraph)


def _one_line(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _first_paragraph(parts: list[str]) -> list[str]:
    out = []
    for part in parts:
        if not part.strip():
            if out:
                break
            continue
        out.append(part.strip())
    return out


def _google(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        header = _GOOGLE_HEADER.match(lines[i])
        i += 1
        if not header:
            continue
        section_indent = len(header.group(1))
        entry_indent: int | None = None
        name, parts = None, []
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) <= section_indent:
                break  # the next section
            i += 1
            if not line.strip():
                parts.append("")
                continue
            if entry_indent is None:
                entry_indent = _indent(line)
            entry = _GOOGLE_ENTRY.match(line.strip()) if _indent(line) == entry_indent else None
            if entry:
                if name:
                    found.setdefault(name, _one_line(_first_paragraph(parts)))
                name, parts = entry.group(1), [entry.group(3) or ""]
            elif name:
                parts.append(line)
        if name:
            found.setdefault(name, _one_line(_first_paragraph(parts)))
    return found


def _numpy(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    i = 0
    while i + 1 < len(lines):
        title, underline = lines[i].strip(), lines[i + 1].strip()
        i += 1
        if title.lower() not in _NUMPY_SECTIONS or not underline or set(underline) != {"-"}:
            continue
        section_indent = _indent(lines[i - 1])
        i += 1
        name, parts = None, []
        while i < len(lines):
            line = lines[i]
            is_next_header = (
                i + 1 < len(lines) and line.strip() and lines[i + 1].strip()
                and set(lines[i + 1].strip()) == {"-"} and _indent(line) == section_indent
            )
            if is_next_header:
                break
            i += 1
            if not line.strip():
                parts.append("")
                continue
            entry = _NUMPY_ENTRY.match(line.strip()) if _indent(line) == section_indent else None
            if entry:
                if name:
                    found.setdefault(name, _one_line(_first_paragraph(parts)))
                name, parts = entry.group(1), []
            elif name:
                parts.append(line)
        if name:
            found.setdefault(name, _one_line(_first_paragraph(parts)))
    return found


def _clarena(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    name, parts, entry_indent = None, [], 0
    for line in lines:
        entry = _CLARENA_ENTRY.match(line)
        if entry:
            if name:
                found.setdefault(name, _one_line(_first_paragraph(parts)))
            name, parts, entry_indent = entry.group(1), [entry.group(3) or ""], _indent(line)
        elif name and line.strip() and _indent(line) > entry_indent:
            parts.append(line)
        elif name:
            found.setdefault(name, _one_line(_first_paragraph(parts)))
            name, parts = None, []
    if name:
        found.setdefault(name, _one_line(_first_paragraph(parts)))
    return found
