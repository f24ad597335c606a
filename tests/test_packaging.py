"""configs/ and templates/ ship with the distribution, so a non-editable install finds them."""

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _data_files() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    section = parser["options.data_files"]
    return {key.strip(): value.strip() for key, value in section.items()}


def test_every_config_and_template_folder_is_listed_in_data_files():
    listed = set(_data_files())
    for top in ("configs", "templates"):
        for folder in [ROOT / top, *[p for p in (ROOT / top).rglob("*") if p.is_dir()]]:
            if any(f.is_file() for f in folder.iterdir()):
                rel = folder.relative_to(ROOT).as_posix()
                assert f"share/mtlcli/{rel}" in listed, f"{rel}/ is not shipped: add it to [options.data_files]"


def test_wheel_contains_every_shipped_config(tmp_path):
    # build from a copy: setuptools leaves build/ behind, which must not touch the checkout
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("mtlcli", "configs", "templates"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("mtlcli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml")]
    assert shipped
    for rel in shipped:
        assert any(name.endswith(f".data/data/share/mtlcli/{rel}") for name in names), f"{rel} missing from the wheel"


def test_tool_finds_its_own_configs_outside_the_project(tmp_path, monkeypatch):
    from mtlcli.resources import config_search_path, shipped_dir

    monkeypatch.chdir(tmp_path)  # no ./configs here
    assert config_search_path() == [shipped_dir("configs")]
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    assert config_search_path()[0] == tmp_path / "configs"
