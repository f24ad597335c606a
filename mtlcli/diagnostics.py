"""Findings of ``mtlcli validate``: one mistake, where it is, and how to fix it.

Each finding prints as ``path:line:col: error|warning [code] message`` with a
hint on the next line. The codes are stable (scripts and CI may match on them):

=====================  =====================================================================
code                   meaning
=====================  =====================================================================
yaml-syntax            the file is not valid YAML (tabs, bad indentation, unclosed quotes, ...)
duplicate-key          a mapping has the same key twice
empty-file             the file holds no YAML document
not-utf8               the file is not UTF-8 text
unreadable             the file cannot be read (a broken or looping link, an I/O error)
not-a-mapping          a config (or a ``_target_`` node) is not a ``key: value`` mapping
missing-target         a component config has no ``_target_``
bad-target             ``_target_`` does not name an importable object
not-callable           ``_target_`` names something that cannot be called
wrong-base-class       ``_target_`` is not the kind of class its group needs (``mtl_algorithm/``
                       targets must subclass ``MTLAlgorithm``)
missing-field          a required constructor argument is not set
unknown-field          a key is not an argument of the ``_target_``
not-settable           a key names an argument a YAML mapping cannot set (positional-only, ``*args``)
injected-field         a key sets an argument the trainer injects (an algorithm's ``backbone``)
unfilled-value         ``???`` (Hydra's "must be set") is still there; a warning in a group
                       file (an experiment may set it), an error in an experiment
type-mismatch          a value does not fit the argument's annotation
missing-partial        an optimizer/lr_scheduler is not ``_partial_: true``, so the trainer
                       cannot complete it with its injected argument
bad-special-key        a Hydra key (``_partial_``, ``_args_``, ``_recursive_``, ``_convert_``) has a
                       wrong value
unknown-option         a ``defaults:`` entry names a config that does not exist
bad-defaults           a ``defaults:`` list is not a list of ``group: option`` entries
bad-interpolation      a ``${...}`` reference does not resolve
bad-experiment         an experiment's own fields are wrong (``train_tasks``, ``eval_tasks``, ...)
incompatible           components that do not fit together (tasks, dimensions)
rejected-value         a component's constructor rejects a value (found by building it; no data is read)
=====================  =====================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mtlcli.errors import Origin

CODES: dict[str, str] = {}
for _row in __doc__.split("=\n", 2)[2].splitlines():
    if _row and not _row.startswith((" ", "=")):
        _code, _, _meaning = _row.partition(" ")
        CODES[_code] = _meaning.strip()

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one config file."""

    path: str
    line: int          # 1-based; 0 when the whole file is meant
    col: int           # 1-based; 0 when the whole file is meant
    severity: str      # "error" or "warning"
    code: str          # one of CODES
    message: str
    hint: str = ""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")
        if self.severity not in (ERROR, WARNING):
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def origin(self) -> Origin:
        return Origin(self.path, self.line, self.col)

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        text = f"{self.origin}: {self.severity} [{self.code}] {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_text(self) -> str:
        """The finding line, and the hint indented on the next line."""
        text = f"{self.origin}: {self.severity} [{self.code}] {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


def finding(origin: Origin, severity: str, code: str, message: str, hint: str = "") -> Finding:
    return Finding(origin.path, origin.line, origin.col, severity, code, message, hint)


def format_text(findings: list[Finding], files_checked: int) -> str:
    lines = [f.to_text() for f in findings]
    errors = sum(f.is_error for f in findings)
    warnings = len(findings) - errors
    noun = "file" if files_checked == 1 else "files"
    if findings:
        lines.append(f"{errors} error(s), {warnings} warning(s) in {files_checked} {noun}")
    else:
        lines.append(f"{files_checked} {noun} checked, no problems found")
    return "\n".join(lines)


def format_json(findings: list[Finding], files_checked: int) -> str:
    errors = sum(f.is_error for f in findings)
    return json.dumps(
        {
            "files_checked": files_checked,
            "errors": errors,
            "warnings": len(findings) - errors,
            "findings": [asdict(f) for f in findings],
        },
        indent=2,
    )
