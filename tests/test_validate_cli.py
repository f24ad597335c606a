"""The validate and new-algorithm commands as a user runs them: output, exit codes, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def mtlcli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtlcli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("argv", [["--help"], ["validate", "--help"], ["new-algorithm", "--help"]])
def test_help_does_not_import_torch(argv):
    probe = (
        "import sys\n"
        f"sys.argv = ['mtlcli', *{argv!r}]\n"
        "from mtlcli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'jinja2', 'ruamel.yaml') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "HEAVY []"


def test_exit_codes_and_text_output(tmp_path):
    configs = tmp_path / "configs" / "optimizer"
    configs.mkdir(parents=True)
    (configs / "sgd.yaml").write_text("_target_: torch.optim.SGD\n_partial_: true\nlr: 0.1\n")
    clean = mtlcli("validate", cwd=tmp_path)
    assert (clean.returncode, clean.stdout) == (0, "1 file checked, no problems found\n")
    (configs / "adam.yaml").write_text("_target_: torch.optim.Adam\n_partial_: true\nlrr: 0.1\n")
    found = mtlcli("validate", "configs", cwd=tmp_path)
    assert found.returncode == 1
    assert found.stdout.splitlines() == [
        "configs/optimizer/adam.yaml:3:1: error [unknown-field] unknown field 'lrr' for torch.optim.Adam",
        "    hint: did you mean 'lr'?",
        "1 error(s), 0 warning(s) in 2 files",
    ]
    missing = mtlcli("validate", "nowhere.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere.yaml: no such file or folder" in missing.stderr
    assert mtlcli("validate", "--format", "xml", cwd=tmp_path).returncode == 2
    assert mtlcli("validate", "--no-such-option", cwd=tmp_path).returncode == 2


def test_json_output_and_strict_warnings(tmp_path):
    folder = tmp_path / "backbone"
    folder.mkdir()
    (folder / "mlp.yaml").write_text("_target_: mtlcli.backbones.MLP\ninput_dim: ???\nhidden_dims: [4]\noutput_dim: 2\n")
    result = mtlcli("validate", "--format", "json", "backbone", cwd=tmp_path)
    assert result.returncode == 0  # a warning alone does not fail
    report = json.loads(result.stdout)
    assert report["files_checked"] == 1 and report["errors"] == 0 and report["warnings"] == 1
    assert report["findings"] == [{"path": "backbone/mlp.yaml", "line": 2, "col": 12, "severity": "warning",
                                   "code": "unfilled-value", "message": "input_dim is ??? (must be set)",
                                   "hint": "set it here, in the experiment, or with an override on the command line"}]
    assert mtlcli("validate", "--strict", "backbone", cwd=tmp_path).returncode == 1


def test_pre_commit_hook_runs_validate():
    from mtlcli.yamlio import load_yaml, to_plain

    hooks = to_plain(load_yaml(REPO / ".pre-commit-hooks.yaml"))
    (hook,) = hooks
    assert hook["id"] == "mtlcli-validate" and hook["entry"] == "mtlcli validate"
    assert hook["language"] == "system" and hook["pass_filenames"] is True
    import re

    assert re.search(hook["files"], "configs/mtl_algorithm/uw.yaml")
    assert not re.search(hook["files"], "mtlcli/cli.py")
