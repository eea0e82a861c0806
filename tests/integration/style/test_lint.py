"""Linters run as tests: ruff (lint and format) and mypy over every package, and the
rules that keep the test suite honest."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.framework.prereq import require

ROOT = Path(__file__).resolve().parents[3]


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    require(Path(path).exists(), f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_ruff_clean() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def _packages() -> list[str]:
    """Every package the project ships (pyproject's packages.find include), so a new one is
    checked from its first commit."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(p.rstrip("*") for p in include)


def test_ruff_format_clean() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "format", "--check", "--no-cache", *_packages(), "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def test_mypy_whole_tree() -> None:
    cache = Path.home() / ".cache" / "schedlab" / "mypy"
    proc = subprocess.run(
        [_tool("mypy"), "--cache-dir", str(cache), *_packages()],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_prerequisites_go_through_prereq() -> None:
    """A bare pytest.skip (or skipif) would hide a missing prerequisite under CI."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == "prereq.py" or path == Path(__file__).resolve():
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if "pytest.skip(" in line or "mark.skipif" in line or 'environ.get("CI")' in line:
                offenders.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    assert not offenders, "use tests.framework.prereq (missing/require):\n" + "\n".join(offenders)


def test_test_file_basenames_are_unique() -> None:
    """pytest imports test modules by basename (rootdir-relative, no packages): two files
    with one name make the second fail to collect ("import file mismatch")."""
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    dups = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not dups, f"rename one of each: {dups}"
