"""Tier 2: KvmEngine performance mode, checked from /proc of the vCPU threads.

This host's refusals are part of what is checked: each one is reported by name and the
guest still runs.
"""

import os
import threading
import time
import uuid

import pytest

from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.host_llc import host_llcs
from schedlab_shared.topology import Topology
from schedlab_shared.vm_config import VmConfig
from tests.framework.microguest import assemble, require_kvm, require_tools
from tests.framework.prereq import missing
from vmm_proc.engines.base import EngineError
from vmm_proc.engines.kvm.boot_plan import RawBoot
from vmm_proc.engines.kvm.engine import KvmEngine
from vmm_proc.engines.kvm.performance import VCPU_FIFO_PRIORITY

pytestmark = pytest.mark.kvm

SPIN = """
    .code16
    .globl start
start:
    mov $0x3f8, %dx
    mov $'P', %al
    out %al, %dx
1:  jmp 1b
"""
SCHED_FIFO = 1
MEASURES = ("pinning", "huge-pages", "fifo", "disable-exits", "realtime-hint")


class Hooks:
    def __init__(self):
        self.exits = []
        self.done = threading.Event()

    def stream(self, name, data):
        pass

    def exited(self, reason, detail):
        self.exits.append((reason, detail))
        self.done.set()


def _config(cpus=1):
    return VmConfig(
        run_id=f"t{uuid.uuid4().hex[:10]}", engine="kvm", kernel="", initrd="", cmdline="",
        topology=Topology(1, 1, cpus, 1), mem_mib=16, timeout_s=30, performance=True,
    )  # fmt: skip


def _sched(tid):
    """(policy, rt_priority, allowed CPUs) of a thread of this process."""
    stat = open(f"/proc/self/task/{tid}/stat").read()
    fields = stat[stat.rindex(")") + 2 :].split()
    rt_priority, policy = int(fields[37]), int(fields[38])  # stat fields 40 and 41
    for line in open(f"/proc/self/task/{tid}/status"):
        if line.startswith("Cpus_allowed_list:"):
            allowed = line.split(":", 1)[1].strip()
    return policy, rt_priority, allowed


@pytest.fixture
def engines(tmp_path, monkeypatch):
    require_kvm()
    require_tools()
    monkeypatch.setattr("vmm_proc.engines.kvm.llc_reservation.LOCK_DIR", tmp_path / "locks")
    affinity = os.sched_getaffinity(0)
    made = []

    def make(cpus=1):
        hooks = Hooks()
        eng = KvmEngine(_config(cpus), hooks, boot=RawBoot(assemble(SPIN)))
        made.append(eng)
        return eng, hooks

    yield make
    for eng in made:
        eng.close()
    for tid in os.listdir("/proc/self/task"):  # performance mode pinned this process's threads
        try:
            os.sched_setaffinity(int(tid), affinity)
        except OSError:
            pass


def _notes(eng):
    return {
        m: n for n in eng.performance_notes for m in MEASURES if n.startswith(f"performance: {m}")
    }


def test_vcpu_threads_are_pinned_and_fifo_and_every_measure_is_reported(engines):
    if sum(len(g) for g in host_llcs()) < 2:
        missing("performance mode needs at least 2 host CPUs")
    eng, hooks = engines()
    eng.start()
    ((pid, tid),) = eng.vcpu_threads()[0]
    assert pid == os.getpid()
    notes = _notes(eng)
    assert set(notes) == set(MEASURES), eng.performance_notes  # each one applied or refused
    policy, prio, allowed = _sched(tid)
    if "refused" in notes["fifo"]:
        assert "not permitted" in notes["fifo"] or "sched_setscheduler" in notes["fifo"]
    else:
        assert (policy, prio) == (SCHED_FIFO, VCPU_FIFO_PRIORITY)
    assert "refused" not in notes["pinning"], notes["pinning"]
    vcpu_cpu = int(notes["pinning"].split("vcpu0->cpu")[1].split(",")[0])
    assert allowed == str(vcpu_cpu)
    service = _sched(threading.get_native_id())[2]
    assert service != allowed and str(vcpu_cpu) not in service.split(",")
    time.sleep(0.1)
    assert not hooks.exits  # the guest still runs under every applied measure
    eng.stop(ExitReason.STOPPED)
    assert hooks.done.wait(10)


def test_a_second_performance_run_cannot_share_the_llc_and_goes_on_without_pinning(engines):
    llcs = host_llcs()
    if len(llcs) != 1:
        missing("this check needs a host with a single LLC")
    first, _ = engines()
    first.start()
    second, hooks = engines()
    second.start()
    note = _notes(second)["pinning"]
    assert "pinning refused" in note and "held by other performance runs" in note
    assert not hooks.exits
    first.close()
    third, _ = engines()
    third.start()  # the LLC lock went with the first VM
    assert "refused" not in _notes(third)["pinning"]


def test_too_few_host_cpus_refuses_the_mode_in_one_line(engines):
    have = sum(len(g) for g in host_llcs())
    eng, hooks = engines(cpus=have)
    with pytest.raises(EngineError) as info:
        eng.start()
    msg = str(info.value)
    assert "\n" not in msg and f"needs {have + 1} host CPUs" in msg and "offers" in msg
    assert not os.path.exists(eng.config.guest_ram_path) and not hooks.exits
