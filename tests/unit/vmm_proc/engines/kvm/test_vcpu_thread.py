"""VcpuThread state machine, kicks and joins, driven by a fake vCPU port."""

import threading
import time

import pytest

from schedlab_shared.bus.vmm import ExitReason
from vmm_proc.engines.kvm.vcpu_control import VcpuEvent, VcpuResponse, VcpuState, VcpuStop
from vmm_proc.engines.kvm.vcpu_thread import VcpuThread, VcpuThreadError
from vmm_proc.kvm.exits import Interrupted
from vmm_proc.kvm.kick import install_kick_handler


class FakePort:
    """KVM_RUN that "blocks in the guest" until immediate_exit is set, like a halted AP."""

    def __init__(self, script=()):
        self.script = list(script)
        self.ie = threading.Event()
        self.runs = 0

    def run(self):
        self.runs += 1
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        self.ie.wait(5)
        self.ie.clear()
        return Interrupted()

    @property
    def immediate_exit(self):
        return self.ie.is_set()

    @immediate_exit.setter
    def immediate_exit(self, on):
        if on:
            self.ie.set()
        else:
            self.ie.clear()


def make(port, dispatch=lambda e: None):
    stops = []
    install_kick_handler()
    t = VcpuThread(0, port, dispatch, lambda i, s: stops.append((i, s)))
    return t, stops


def test_paused_resume_pause_finish_transitions():
    t, stops = make(FakePort())
    t.start()
    assert t.send(VcpuEvent.PAUSE).response is VcpuResponse.NOT_ALLOWED
    assert t.send(VcpuEvent.RESUME).response is VcpuResponse.RESUMED
    reply = t.send(VcpuEvent.RESUME)
    assert (reply.response, reply.reason) == (VcpuResponse.NOT_ALLOWED, "already running")
    assert t.send(VcpuEvent.PAUSE).response is VcpuResponse.PAUSED
    assert t.state is VcpuState.PAUSED
    assert t.send(VcpuEvent.RESUME).response is VcpuResponse.RESUMED
    t.finish(timeout=2)
    assert t.state is VcpuState.FINISHED and not t.alive and stops == []


def test_thread_is_named_after_the_vcpu():
    t, _ = make(FakePort())
    t.start()
    assert any(th.name == "vcpu0" for th in threading.enumerate())
    t.finish(timeout=2)


def test_dispatch_stop_moves_to_exited_and_reports_once():
    stop = VcpuStop(ExitReason.GUEST_EXIT, "reset")
    t, stops = make(FakePort(["exit-a", "exit-b"]), lambda e: stop if e == "exit-b" else None)
    t.start()
    t.send(VcpuEvent.RESUME)
    deadline = time.monotonic() + 2
    while t.state is not VcpuState.EXITED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert t.state is VcpuState.EXITED and t.exits == 2
    assert stops == [(0, stop)]
    reply = t.send(VcpuEvent.RESUME)
    assert reply.response is VcpuResponse.NOT_ALLOWED and "reset" in reply.reason
    t.finish(timeout=2)
    assert t.state is VcpuState.FINISHED


def test_kvm_run_error_and_handler_bug_end_in_error():
    t, stops = make(FakePort([OSError(14, "Bad address")]))
    t.start()
    t.send(VcpuEvent.RESUME)
    t.finish(timeout=2)
    assert stops[0][1].reason is ExitReason.ERROR and "KVM_RUN" in stops[0][1].detail

    def boom(exit_):
        raise ValueError("device bug")

    t, stops = make(FakePort(["x"]), boom)
    t.start()
    t.send(VcpuEvent.RESUME)
    t.finish(timeout=2)
    assert stops[0][1].reason is ExitReason.ERROR and "device bug" in stops[0][1].detail


def test_join_timeout_fails_loudly():
    release = threading.Event()

    class Stuck(FakePort):
        def run(self):
            release.wait(10)  # ignores immediate_exit: a wedged ioctl
            return Interrupted()

    t, _ = make(Stuck())
    t.start()
    t.send(VcpuEvent.RESUME)
    with pytest.raises(VcpuThreadError, match="vcpu0 still alive"):
        t.finish(timeout=0.2)
    release.set()
    t.finish(timeout=2)


def test_kick_after_thread_end_is_a_noop():
    t, _ = make(FakePort())
    t.start()
    t.finish(timeout=2)
    t.kick()  # must not signal a dead thread (pthread_kill on it is undefined)
    reply = t.send(VcpuEvent.RESUME, timeout=0.2)
    assert reply.response is VcpuResponse.NOT_ALLOWED and "finished" in reply.reason
