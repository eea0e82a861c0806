"""Linters run as tests: ruff over the whole tree, mypy over the typed contracts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.framework.prereq import require

ROOT = Path(__file__).resolve().parents[3]


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    require(Path(path).exists(), f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_ruff_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_mypy_on_contracts() -> None:
    targets = ["schedlab_shared", "guest/wire.py", "schedlab_scenario", "guest/scenario/document.py"]
    targets += ["guest/scenario/work.py", "guest/scenario/record.py"]
    proc = subprocess.run(
        [_tool("mypy"), "--ignore-missing-imports", "--no-incremental", "--follow-imports=silent", *targets],
        cwd=ROOT, capture_output=True, text=True,
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
