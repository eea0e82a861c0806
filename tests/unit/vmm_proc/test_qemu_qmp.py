"""vCPU thread ids through QMP from a real (paused, kernel-less) QEMU, and their run times."""

import shutil
import subprocess

import pytest

from tests.framework.prereq import require
from vmm_proc.engines.qemu_qmp import QmpError, _thread_ids, vcpu_thread_ids
from vmm_proc.vcpu_times import thread_run_ns


@pytest.mark.parametrize(("threads", "distinct"), [("single", 1), ("multi", 3)])
def test_thread_ids_of_each_vcpu(tmp_path, threads, distinct):
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 not installed")
    sock = str(tmp_path / "qmp.sock")
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-S",
            "-nodefaults",
            "-display",
            "none",
            "-M",
            "pc",
            "-smp",
            "3",
            "-accel",
            f"tcg,thread={threads}",
            "-qmp",
            f"unix:{sock},server=on,wait=off",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        tids = vcpu_thread_ids(sock, 3, timeout_s=10.0)
        assert len(tids) == 3 and len(set(tids)) == distinct
        assert all(thread_run_ns(proc.pid, t) >= 0 for t in tids)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert thread_run_ns(proc.pid, tids[0]) == -1  # gone with its process


def test_no_qmp_server_is_a_clear_error(tmp_path):
    with pytest.raises(QmpError, match="QMP at"):
        vcpu_thread_ids(str(tmp_path / "absent.sock"), 2, timeout_s=0.3)


@pytest.mark.parametrize(
    "reply",
    [
        None,
        [{"cpu-index": 0, "thread-id": 5}],
        [{"cpu-index": 0, "thread-id": 5}, {"cpu-index": 0, "thread-id": 6}],
        [{"cpu-index": 0, "thread-id": "x"}, {"cpu-index": 1, "thread-id": 6}],
        [{"cpu-index": 0, "thread-id": 5}, {"cpu-index": 9, "thread-id": 6}],
    ],
)
def test_malformed_replies_are_refused(reply):
    with pytest.raises(QmpError):
        _thread_ids(reply, 2)
