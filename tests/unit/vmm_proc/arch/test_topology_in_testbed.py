"""Linux's own view of the topology our CPUID, MADT and SRAT describe, on real KVM semantics.

The testbed's L1 CPU is qemu64 (AMD family 0xF, no TOPOEXT of its own), so this exercises
the synthesized 0x8000001D/0x8000001E path and leaf 0x1F. Sibling lists come from sysfs.
"""

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from schedlab_shared.cache import kernels_dir
from schedlab_shared.topology import Topology
from tests.framework.prereq import require

pytestmark = [pytest.mark.slow, pytest.mark.testbed]

REPO = Path(__file__).resolve().parents[4]
PROBE = Path(__file__).with_name("topology_probe.py")
SPECS = ("1,2,3,1", "2,1,1,2")  # 2 LLCs with padded core IDs; SMT and 2 NUMA nodes


def _cpulist(cpus):
    """Linux's cpulist format for a sorted list of CPU numbers."""
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)


def _expected(topo):
    cpus = topo.cpus()
    group = {
        "thread": lambda c: c.core,
        "llc": lambda c: c.llc,
        "die": lambda c: c.llc,
        "pkg": lambda c: c.node,
    }
    want = {}
    for c in cpus:
        row = {k: _cpulist([o.index for o in cpus if f(o) == f(c)]) for k, f in group.items()}
        row["node"] = f"node{c.node}"
        want[f"cpu{c.index}"] = row
    return want


def test_linux_sees_the_topology_we_describe(monkeypatch):
    require(
        shutil.which("qemu-system-x86_64") is not None and Path("/bin/busybox").is_file(),
        "qemu-system-x86 and busybox-static are needed for the testbed",
    )
    from orchestrator.testbed.l1kernel import L1KernelError, ensure_l1_kernel
    from orchestrator.testbed.run import run_in_testbed

    try:
        ensure_l1_kernel()
    except L1KernelError as exc:
        require(False, f"L1 kernel unavailable: {exc}")
    dirs = [d for d in sorted(kernels_dir().glob("*/"), reverse=True) if (d / "vmlinux").is_file()]
    require(
        bool(dirs), f"no cached kernel with a vmlinux in {kernels_dir()} (schedlab kernel fetch)"
    )
    monkeypatch.chdir(REPO)  # L1 hides the host's /tmp
    out = io.BytesIO()
    result = run_in_testbed(
        [sys.executable, str(PROBE), str(dirs[0]), *SPECS], timeout=1500, stdout=out
    )
    assert result.exit_code == 0, out.getvalue()[-3000:]
    reports = [
        json.loads(line) for line in out.getvalue().decode().splitlines() if line.startswith("{")
    ]
    assert [r["spec"] for r in reports] == list(SPECS)
    for report in reports:
        assert any("power-off" in e for e in report["exit"]), report
        assert report["cpus"] == _expected(Topology.parse(report["spec"])), report
