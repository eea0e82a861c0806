"""Tier 3: schedlab's pytest plugin booting real VMs (QEMU TCG, the default 7.2 kernel).

- The README's example test file, run by the README's one command, writes JUnit and a
  sidecar, and its cpuset change shows in the CPUs the workers used.
- Expected errors under pytest-xdist (-n 2, two VMs sharing the host's slots): the named
  failure passes, another failure does not.
- A two-variant gauntlet of scx_qmap (tiny-1llc x {default, batch}) with -n 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from schedlab_results import sidecar
from tests.framework.schedlab_cli import ROOT, default_kernel_or_skip, leftovers
from tests.framework.schedlab_plugin import plugin_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _kernel() -> None:
    default_kernel_or_skip()


def _launcher_is_this_tree() -> bool:
    """The ``./schedlab`` launcher's virtualenv was set up from this tree (its stamp), so
    running it changes nothing (a worktree beside it would re-point the shared venv)."""
    stamp = Path(sys.executable).parent.parent / ".schedlab-stamp"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    try:
        return stamp.read_text().strip() == f"{want}:{ROOT}"
    except OSError:
        return False


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"```python\n(# test_mine\.py\n.*?)```", text, re.S)
    assert m, "README.md lost its example test (a ```python block starting '# test_mine.py')"
    return m.group(1)


def _pytest(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _cases(junit: Path) -> dict[str, ET.Element]:
    return {c.get("name", ""): c for c in ET.parse(junit).getroot().iter("testcase")}


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_readme_example_through_the_documented_command(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(_readme_example())
    junit = tmp_path / "junit.xml"
    args = ["test_mine.py", f"--junitxml={junit}", f"--schedlab-out={tmp_path / 'out'}"]
    if _launcher_is_this_tree():
        # The README's command, from the user's directory with a relative path.
        argv = [str(ROOT / "schedlab"), "test", *args, "-p", "no:cacheprovider"]
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    else:  # the same pytest line the launcher execs, from the same directory
        proc = _pytest(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    case = _cases(junit)["test_cpuset_split"]
    assert case.find("failure") is None and case.find("error") is None
    props = _props(case)
    side = sidecar.read(props["schedlab_sidecar"])
    assert side["identity"]["topology"]["spec"] == "1,2,2,1" and side["run"]["passed"]
    result = json.loads((Path(props["schedlab_run_dir"]) / "result.json").read_text())
    assert result["scenario"]["name"] == "split"
    # Step 2 put cg_1 on LLC 1's usable CPU (2): its workers ran there only.
    held = [s for s in result["scenario"]["steps"][1]["workers"] if s["phase"] == "hold"]
    cg1 = [s for s in held if s["cgroup"] == "cg_1"]
    assert cg1 and all(set(s["cpus"]) <= {2} for s in cg1), cg1
    assert all(set(s["cpus"]) <= {0, 1} for s in held if s["cgroup"] == "cg_0")
    assert leftovers(result["run_id"]) == []


EXPECT = """
import schedlab_test as sl

@sl.vm(asserts={"max_gap_ms": 1}, expect_error=r"max_gap: .*> 1(\\.0)? ms", duration=1)
def test_named_failure_happens(ctx):
    return ctx.steady()

@sl.vm(asserts={"max_gap_ms": 1}, expect_error="starved", duration=1)
def test_another_failure_is_not_the_named_one(ctx):
    return ctx.steady()
"""


def test_expected_errors_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "test_expect.py").write_text(EXPECT)
    junit = tmp_path / "junit.xml"
    proc = _pytest(
        tmp_path,
        "test_expect.py",
        "-n",
        "2",
        "--vm-slots",
        "4",
        f"--junitxml={junit}",
        f"--schedlab-out={tmp_path / 'out'}",
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    cases = _cases(junit)
    assert cases["test_named_failure_happens"].find("failure") is None
    bad = cases["test_another_failure_is_not_the_named_one"].find("failure")
    assert bad is not None and "expected a failure matching 'starved', got another" in (
        bad.text or ""
    )
    assert "gap(s) > 1 ms" in (bad.text or "")  # the evidence: what did fail


GAUNTLET = """
import schedlab_test as sl

@sl.vm(scheduler="scx_qmap", gauntlet_flags=["batch"], presets=["tiny-1llc", "numa2-4llc"],
       max_nodes=1, duration=1)
def test_qmap(ctx):
    return ctx.steady()
"""


def test_two_variant_gauntlet_with_two_workers(tmp_path: Path) -> None:
    (tmp_path / "test_g.py").write_text(GAUNTLET)
    junit = tmp_path / "junit.xml"
    proc = _pytest(
        tmp_path,
        "test_g.py",
        "--gauntlet",
        "-n",
        "2",
        "--vm-slots",
        "8",
        f"--junitxml={junit}",
        f"--schedlab-out={tmp_path / 'out'}",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    cases = _cases(junit)
    assert set(cases) == {
        "test_qmap[gauntlet/test_qmap/tiny-1llc/default]",
        "test_qmap[gauntlet/test_qmap/tiny-1llc/batch]",
    }  # numa2-4llc: excluded by max_nodes=1, never generated
    sides = [sidecar.read(_props(c)["schedlab_sidecar"]) for c in cases.values()]
    assert sorted(s["identity"]["scheduler"]["profile"] for s in sides) == ["batch", "default"]
    assert all(s["identity"]["topology"]["preset"] == "tiny-1llc" for s in sides)
    batch = next(s for s in sides if s["identity"]["scheduler"]["profile"] == "batch")
    assert "-b" in batch["identity"]["scheduler"]["args"]
