"""Tier 3: the monitor reads a real kernel's runqueues from QEMU TCG's shared guest RAM."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from monitor_proc.helpers.ext import scx_sample
from monitor_proc.helpers.pid import for_each_task
from monitor_proc.helpers.sched import rq_sample, task_sample
from monitor_proc.kallsyms import load_symbols
from monitor_proc.memory import FaultError, GuestPhysMemory
from monitor_proc.program import BadDataError, Program
from monitor_proc.translate import TranslationError
from tests.framework.prereq import require, under_ci

pytestmark = pytest.mark.slow

RAM = 512 << 20
BUSYBOX = Path("/bin/busybox")
SPIN_INIT = b"#!/bin/busybox sh\nwhile :; do :; done\n"


def _default_kernel() -> tuple[Path, Path] | None:
    """(vmlinux, vmlinuz) of the default kernel (the one ``schedlab run`` boots): other
    cached kernels, e.g. trixie's 6.12 without sched_ext, sort before it by name."""
    from orchestrator.kernel.artifacts import KernelError
    from orchestrator.kernel.resolve import resolve_kernel

    try:
        k = resolve_kernel(None, fetch_if_missing=under_ci())
    except KernelError:
        k = None
    if k is not None and k.vmlinux is not None:
        return Path(k.vmlinux), Path(k.vmlinuz)
    dev = Path("/root/dev-kernel/vmlinux")
    zs = sorted(Path("/root/dev-kernel/x/usr/lib/modules").glob("*/vmlinuz"))
    return (dev, zs[0]) if dev.is_file() and zs else None


def _l1_kernel(tmp: Path) -> tuple[Path, Path] | None:
    """The testbed's 6.12 kernel (zero-based per-CPU area, no sched_ext), fetched under CI."""
    from orchestrator.kernel.image import extract_vmlinux
    from orchestrator.testbed.l1kernel import ensure_l1_kernel, testbed_dir

    found = sorted(testbed_dir().glob("l1-6.12*/vmlinuz"))
    if not found and under_ci():
        ensure_l1_kernel()
        found = sorted(testbed_dir().glob("l1-6.12*/vmlinuz"))
    if not found:
        return None
    vmlinux = tmp / "vmlinux-6.12"
    vmlinux.write_bytes(extract_vmlinux(found[-1].read_bytes()))
    return vmlinux, found[-1]


def _initramfs(path: Path) -> None:
    from orchestrator.initramfs.cpio import CpioArchive

    a = CpioArchive()
    for d in ("bin", "dev", "proc"):
        a.add_dir(d)
    a.add_file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    a.add_symlink("bin/sh", "busybox")
    a.add_char_device("dev/console", 5, 1)
    a.add_file("init", SPIN_INIT, 0o755)
    path.write_bytes(a.to_bytes())


def _qemu(vmlinuz: Path, initrd: Path, shm: str, log: Path) -> subprocess.Popen:
    cmd = [
        "qemu-system-x86_64",
        "-object",
        f"memory-backend-file,id=mem,size={RAM >> 20}M,mem-path={shm},share=on",
        "-machine",
        "memory-backend=mem",
        "-M",
        "pc",
        "-accel",
        "tcg,thread=single",  # MTTCG can crash a booting guest (int3 patching)
        "-cpu",
        "max",
        "-m",
        str(RAM >> 20),
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 nokaslr panic=-1 quiet",
    ]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _until(deadline: float, what: str, probe):  # noqa: ANN001, ANN202
    """Call ``probe`` until it returns a truthy value; guest-not-ready errors mean retry."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
        except (TranslationError, FaultError, BadDataError, IndexError) as e:
            last = e
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what} (last error: {last})")


@pytest.mark.parametrize("which", ["default", "6.12"])
def test_rq_samples_from_a_booting_kernel(tmp_path: Path, which: str) -> None:
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 not installed")
    require(BUSYBOX.is_file(), "busybox-static not installed")
    kernel = _default_kernel() if which == "default" else _l1_kernel(tmp_path)
    require(
        kernel is not None,
        f"no {which} kernel (schedlab kernel cache, /root/dev-kernel, or the testbed's L1 kernel)",
    )
    assert kernel is not None
    vmlinux, vmlinuz = kernel

    t0 = time.perf_counter()
    symbols = load_symbols(vmlinux, cache_dir=tmp_path / "symbols")
    t1 = time.perf_counter()
    symbols = load_symbols(vmlinux, cache_dir=tmp_path / "symbols")
    t2 = time.perf_counter()
    initrd = tmp_path / "initrd.cpio"
    _initramfs(initrd)
    shm = f"/dev/shm/schedlab-test-{uuid.uuid4().hex[:12]}"
    qemu = _qemu(vmlinuz, initrd, shm, tmp_path / "console.log")
    mem = None
    try:
        _until(
            time.monotonic() + 20,
            "the RAM file",
            lambda: os.path.exists(shm) and os.stat(shm).st_size >= RAM,
        )
        mem = GuestPhysMemory([{"gpa": 0, "size": RAM, "path": shm, "offset": 0}])
        t3 = time.perf_counter()
        prog = Program(vmlinux, mem, symbols=symbols)
        t4 = time.perf_counter()
        deadline = time.monotonic() + 90
        # The spinning /init shows up as some CPU's current task once userspace runs.
        _until(
            deadline,
            "/init running",
            lambda: (
                prog.nr_cpu_ids == 2
                and any(rq_sample(prog, c).get("curr_comm") == "init" for c in range(2))
            ),
        )
        first = [rq_sample(prog, c) for c in range(2)]
        tasks = {task_sample(prog, t)["pid"]: t for t in for_each_task(prog)}
        init_before = task_sample(prog, tasks[1])
        time.sleep(0.3)
        t5 = time.perf_counter()
        second = [rq_sample(prog, c) for c in range(prog.nr_cpu_ids)]
        t6 = time.perf_counter()
        print(
            f"\nkallsyms cold {t1 - t0:.2f}s cached {t2 - t1:.2f}s; Program (BTF, probe) "
            f"{t4 - t3:.2f}s; one sample of 2 CPUs {(t6 - t5) * 1e3:.2f} ms"
        )
        print(first, second, sep="\n")
        for a, b in zip(first, second, strict=True):
            assert b["rq_clock"] > a["rq_clock"], "rq_clock did not advance"
            assert b["nr_switches"] >= a["nr_switches"]
            assert ("scx_nr_running" in a) == (which == "default")
        assert any(s["nr_running"] >= 1 for s in first + second)
        # A second source of truth: the task list agrees with the runqueues.
        init_after = task_sample(prog, tasks[1])
        assert init_after["comm"] == "init" and init_after["state"] == "R"
        assert init_after["sum_exec_runtime"] > init_before["sum_exec_runtime"]
        assert init_after["cpu"] in (0, 1) and len(tasks) > 10
        assert task_sample(prog, tasks[2])["comm"] == "kthreadd"
        assert prog.possible_cpus() == [0, 1] and prog.online_cpus() == [0, 1]
        expected_scx = "SCX_DISABLED" if which == "default" else None
        assert scx_sample(prog) == {"scx_state": expected_scx, "scx_ops": None}
    finally:
        qemu.kill()
        qemu.wait(timeout=30)
        if mem is not None:
            mem.close()
        Path(shm).unlink(missing_ok=True)
    assert not Path(shm).exists()
