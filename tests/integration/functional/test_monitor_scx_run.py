"""Tier 3: the monitor's sched_ext view on a real 7.2 kernel under QEMU TCG.

The EEVDF run (no BPF scheduler) shows the new per-CPU fields (scx_rq, schedstat), the
host's vCPU run times, the sched-domain chain, and applies no threshold. With a sched_ext
scheduler: scx_qmap on 1,1,4,1 (DSQ depths and event counters moving), the 1 s watchdog
override (qmap's stall fails fast; a healthy scx_simple survives it), and scx_cpu0 (every
task on CPU 0) violating the imbalance threshold.
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


class NotAttached(AssertionError):
    """The run's scheduler never attached in the guest."""


def _attached(run) -> dict:  # noqa: ANN001
    result = run.result
    assert result is not None, run.stderr[-3000:]
    if not result["scheduler"]["attached"]:
        raise NotAttached(f"scheduler did not attach: {result['scheduler']}")
    return result


def _samples(run_dir: Path) -> list[dict]:
    return [
        check_sample(json.loads(x))
        for x in (run_dir / "monitor-monitor.jsonl").read_text().splitlines()
    ]


def test_qmap_dsq_depths_and_event_counters_move(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "6",
            "--topology",
            "1,1,4,1",
            "--scheduler",
            "scx_qmap",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    result = _attached(run)
    assert run.code == 0, result["reasons"]
    run_dir = Path(result["run_dir"])
    mon = result["monitor"]
    assert mon["checks"]["status"] == "passed" and mon["checks"]["judged_samples"] > 10
    assert len(mon["events"]) == 13 and all(n.startswith("SCX_EV_") for n in mon["events"])
    attached = [s for s in _samples(run_dir) if "scx" in s]
    assert len(attached) > 20 and attached[0]["scx"]["ops"] == "qmap"
    first, last = attached[0]["scx"]["events"], attached[-1]["scx"]["events"]
    assert any(last[n] > first[n] for n in last), f"no counter moved: {last}"
    assert all("dsqs" in s["scx"] for s in attached)  # qmap's user DSQs
    assert any(s["scx"]["dsqs"] for s in attached)
    assert max(c["scx_nr_running"] for s in attached for c in s["cpus"]) > 0
    assert {c["cpu"] for s in attached for c in s["cpus"]} == {0, 1, 2, 3}


def test_watchdog_override_makes_a_qmap_stall_fail_fast(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "20",
            "--topology",
            "1,1,2,1",
            "--scheduler",
            "scx_qmap",
            "--sched-flag",
            "stall-user",
            "--watchdog-timeout",
            "1",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    result = _attached(run)
    wd = result["monitor"]["watchdog"]
    hz = int(kernel.opt("CONFIG_HZ"))
    assert (wd["requested"], wd["read_back"], wd["previous"]) == (hz, hz, 5 * hz), wd
    ex = result["scheduler"]["exit"]
    assert ex is not None and ex["kind"] == "ERROR_STALL", result["scheduler"]
    assert ex["stall_s"] is not None and ex["stall_s"] < 4.0, ex  # qmap's own timeout: 5 s
    assert result["verdict"] == "failed" and run.code == 1


def test_every_task_on_cpu0_violates_the_imbalance_threshold(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "6",
            "--topology",
            "1,1,2,1",
            "--workers",
            "3",
            "--scheduler",
            "scx_cpu0",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    result = _attached(run)
    viol = result["monitor"]["violations"]
    assert any(v["check"] == "imbalance" and v["value"] > 4 for v in viol), viol
    assert result["verdict"] == "failed" and run.code == 1
    assert any("imbalance" in r for r in result["reasons"])


def test_watchdog_override_leaves_a_healthy_scheduler_running(kernel, tmp_path: Path) -> None:  # noqa: ANN001
    """scx_simple's own timeout is long: after the override to 1 s the watchdog's already
    queued check comes late, and the monitor must keep scx_tick from taking that for a
    starved watchdog until the check ran at the new interval."""
    run = run_cli(
        [
            "run",
            "--engine",
            "qemu",
            "--duration",
            "8",
            "--topology",
            "1,1,2,1",
            "--scheduler",
            "scx_simple",
            "--watchdog-timeout",
            "1",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        tmp_path,
    )
    result = _attached(run)
    wd = result["monitor"]["watchdog"]
    hz = int(kernel.opt("CONFIG_HZ"))
    assert (wd.get("requested"), wd.get("read_back")) == (hz, hz), wd
    assert result["scheduler"]["exit"] is None, result["scheduler"]["exit"]
    assert run.code == 0, result["reasons"]
