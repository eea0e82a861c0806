"""Tier 3: the kernel's example schedulers under the whole system (QEMU TCG, real 7.2 kernel).

Each one is sent to the guest after SYS_RDY (the base image is the same for all), attaches,
carries the default workload on two topologies, and is stopped with a clean detach; a
user's own copy of one under another name does the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.framework.run_checks import assert_complete_run
from tests.framework.sched_runs import DURATION, built_examples, sched_run, sched_section

pytestmark = pytest.mark.slow

OPS = {"scx_simple": "simple", "scx_qmap": "qmap", "scx_central": "central", "scx_flatcg": "flatcg"}


@pytest.fixture(scope="module")
def built():  # noqa: ANN201
    return built_examples()


def _assert_attached_and_clean(s: dict, ops: str) -> None:
    assert s["attached"] and s["attach_status"] == "attached", s
    assert s["ops"] == ops and 0 < s["attach_ms"] < 60_000
    assert s["exit"] is None, s["exit"]
    stop = s["stop"]
    assert (stop["status"], stop["detached"], stop["killed"], stop["problems"]) == (
        "clean", True, False, [])  # fmt: skip
    assert s["log"] == "sched.log" and not s["stopped_early"]


@pytest.mark.parametrize("topology,cpus", [("1,1,2,1", 2), ("1,2,2,1", 4)])
@pytest.mark.parametrize("name", list(OPS))
def test_example_passes_the_default_workload(built, tmp_path: Path, name: str, topology: str,
                                             cpus: int) -> None:  # fmt: skip
    run = sched_run(tmp_path, "--scheduler", name, "--topology", topology, "--duration", DURATION)
    assert run.code == 0, (run.result or {}).get("reasons") or run.stderr[-3000:]
    run_dir = assert_complete_run(run.result, cpus=cpus)
    s = sched_section(run)
    assert s["name"] == name and s["origin"] == "example"
    _assert_attached_and_clean(s, OPS[name])
    kernel_log = (run_dir / "kernel.log").read_text(errors="replace")
    assert f'BPF scheduler "{OPS[name]}" enabled' in kernel_log
    assert f'BPF scheduler "{OPS[name]}" disabled (unregistered from user space)' in kernel_log
    assert name in run.stderr  # the summary names it


def test_a_users_own_copy_under_another_name(built, tmp_path: Path) -> None:
    mine = tmp_path / "my_scheduler"
    shutil.copy(built.schedulers["scx_simple"].path, mine)
    mine.chmod(0o755)
    run = sched_run(tmp_path, "--scheduler", str(mine), "--sched-args", "-f",
                    "--duration", DURATION)  # fmt: skip
    assert run.code == 0, (run.result or {}).get("reasons") or run.stderr[-3000:]
    s = sched_section(run)
    assert (s["name"], s["origin"], s["args"]) == ("my_scheduler", "path", ["-f"])
    _assert_attached_and_clean(s, "simple")
    files = {f["name"] for f in run.result["inputs"]["files"]}
    assert {"my_scheduler", "libelf.so.1", "libz.so.1"} <= files  # with its libraries
