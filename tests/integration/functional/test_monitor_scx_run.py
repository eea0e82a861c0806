"""Tier 3: the monitor's sched_ext view on a real 7.2 kernel under QEMU TCG.

The EEVDF run (no BPF scheduler) shows the new per-CPU fields (scx_rq, schedstat), the
host's vCPU run times, the sched-domain chain, and applies no threshold.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schedlab_shared.monitor_schema import check_sample
from tests.framework.prereq import require
from tests.framework.run_checks import assert_complete_run
from tests.framework.schedlab_cli import default_kernel_or_skip, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 is not installed")
    k = default_kernel_or_skip()
    require(k.enabled("SCHED_CLASS_EXT"), f"kernel {k.version} has no sched_ext")
    return k


def test_eevdf_run_shows_scx_and_schedstat_fields_and_no_violation(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "3",
            "--topology",
            "1,1,2,1",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    assert run.code == 0, run.stderr[-2000:]
    result = run.result
    run_dir = assert_complete_run(result, cpus=2)
    mon = result["monitor"]
    assert mon["checks"]["status"] == "not_applied" and mon["violations"] == []
    assert mon["events"] == {}  # no scheduler, no counters
    last = mon["samples"][-1]["cpus"]
    for c in last:
        assert c["scx_nr_running"] == 0 and c["local_dsq_nr"] == 0
        assert c["scx_flags"] & 1  # SCX_RQ_ONLINE
        assert {"run_delay", "pcount", "sched_count", "ttwu_count"} <= c.keys()
    assert sum(c["sched_count"] for c in last) > 0
    lines = [
        check_sample(json.loads(x))
        for x in (run_dir / "monitor-monitor.jsonl").read_text().splitlines()
    ]
    assert not any("scx" in s for s in lines)
    domains = [s["domains"] for s in lines if "domains" in s]
    assert len(domains) == 1 and all(chain for chain in domains[0])
    assert domains[0][0][0]["span_weight"] == 2
    with_vcpu = [s for s in lines if "vcpus" in s]
    assert with_vcpu, "the VMM reported no vCPU run times"
    first, final = with_vcpu[0]["cpus"][0], with_vcpu[-1]["cpus"][0]
    assert final["vcpu_run_ns"] > first["vcpu_run_ns"] > 0
