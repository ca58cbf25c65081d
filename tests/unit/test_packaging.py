"""The package list in pyproject.toml is complete: a new folder of code or data cannot be left out of
the wheel unnoticed (the list is explicit because resources/ and sql/ are mapped into the package)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _folder_of(package: str) -> Path:
    mapping: dict[str, str] = CONFIG["package-dir"]
    for prefix in sorted(mapping, key=len, reverse=True):
        if package == prefix or package.startswith(prefix + "."):
            rest = package[len(prefix) :].lstrip(".").replace(".", "/")
            return REPO / mapping[prefix] / rest
    return REPO / package.replace(".", "/")


def test_every_folder_of_python_code_in_the_package_is_listed() -> None:
    listed = set(CONFIG["packages"])
    found = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in (REPO / "writeback_console").rglob("*")
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))
    } | {"writeback_console"}
    assert found - listed == set()


def test_the_icons_and_the_dba_scripts_are_packages_of_the_wheel_with_their_files() -> None:
    data: dict[str, list[str]] = CONFIG["package-data"]
    for package, folder in (
        ("writeback_console.resources", REPO / "resources"),
        ("writeback_console.sql.personify360", REPO / "sql" / "personify360"),
        ("writeback_console.sql.postgresql", REPO / "sql" / "postgresql"),
    ):
        assert package in CONFIG["packages"]
        assert _folder_of(package) == folder
        for file in folder.iterdir():
            if file.is_file() and file.suffix != ".py":
                assert any(file.match(pattern) for pattern in data[package]), file


def test_every_listed_package_exists() -> None:
    for package in CONFIG["packages"]:
        assert _folder_of(package).is_dir(), package
