"""Small engine parts: watchdog, console tail, diagnostics, capability check, io thread."""

import threading
import time

import pytest

from vmm_proc.engines.base import EngineError
from vmm_proc.engines.kvm.console_tail import ConsoleTail
from vmm_proc.engines.kvm.diagnostics import VcpuSnapshot, format_stuck_report
from vmm_proc.engines.kvm.eventfd import EventFd
from vmm_proc.engines.kvm.io_thread import IoThread
from vmm_proc.engines.kvm.vm import REQUIRED_CAPS, check_caps
from vmm_proc.engines.kvm.watchdog import Watchdog
from vmm_proc.kvm.cap import Cap
from vmm_proc.kvm.types import Regs, Sregs


def test_watchdog_fires_once_after_its_timeout_and_not_after_cancel():
    fired = []
    w = Watchdog(0.05, lambda: fired.append(time.monotonic()))
    t0 = time.monotonic()
    w.start()
    time.sleep(0.3)
    assert len(fired) == 1 and fired[0] - t0 >= 0.05 and w.fired
    w2 = Watchdog(0.2, lambda: fired.append(0))
    w2.start()
    w2.cancel()
    time.sleep(0.3)
    assert len(fired) == 1 and not w2.fired


def test_console_tail_joins_bytewise_crlf_lines_and_bounds_them():
    tail = ConsoleTail(max_lines=2, max_line=8)
    done = [line for b in b"one\r\ntwo\r\n" for line in tail.feed(bytes([b]))]
    assert done == [b"one", b"two"]
    tail.feed(b"a very long line\nthree")
    assert tail.lines() == ["two", "a very l", "three"]  # 2 complete lines + the partial one


def test_stuck_report_lists_registers_and_console():
    sregs = Sregs(cr3=0x9000)
    snaps = [
        VcpuSnapshot(0, "paused", 12, Regs(rip=0x1234, rsp=0x8000), sregs),
        VcpuSnapshot(1, "running", 0, error="did not pause"),
    ]
    text = format_stuck_report("timeout", snaps, ["last"]).decode()
    assert "vcpu0 [paused, 12 exits] RIP=0x0000000000001234" in text
    assert "CR3=0x9000" in text
    assert "vcpu1 [running, 0 exits] registers unavailable: did not pause" in text
    assert "  | last" in text


class FakeKvm:
    def __init__(self, missing):
        self.missing = set(missing)

    def has(self, cap):
        return cap not in self.missing


def test_missing_capabilities_are_named():
    check_caps(FakeKvm([]))
    with pytest.raises(EngineError, match="IRQFD, IOEVENTFD"):
        check_caps(FakeKvm([Cap.IRQFD, Cap.IOEVENTFD]))
    assert Cap.IMMEDIATE_EXIT in REQUIRED_CAPS


def test_io_thread_runs_handlers_and_drops_a_failing_one():
    good, bad = EventFd(), EventFd()
    calls, errors = [], []
    io = IoThread(errors.append)
    io.add(good, lambda: calls.append(1))

    def boom():
        raise RuntimeError("device bug")

    io.add(bad, boom)
    io.start()
    good.signal()
    bad.signal()
    deadline = time.monotonic() + 2
    while (not calls or not errors) and time.monotonic() < deadline:
        time.sleep(0.01)
    bad.signal()  # unregistered now: must not spin or call again
    time.sleep(0.05)
    assert calls == [1] and len(errors) == 1 and "device bug" in errors[0]
    io.stop(2)
    assert not any(t.name == "vmm-io" and t.is_alive() for t in threading.enumerate())
    good.close()
    bad.close()


def test_io_thread_serves_a_notification_that_races_with_stop():
    evt = EventFd()
    calls = []
    io = IoThread(print)
    io.add(evt, lambda: calls.append(1))
    io.start()
    evt.signal()
    io.stop(2)  # whether or not the loop saw it before the stop, it is served
    assert calls == [1]
    evt.close()


def test_stream_batcher_chunks_at_newlines_and_size_and_flushes_the_rest():
    from vmm_proc.engines.kvm.stream_batcher import StreamBatcher

    out = []
    b = StreamBatcher(lambda n, d: out.append((n, d)), max_bytes=8)
    for ch in b"ab\ncd":
        b.write("console", bytes([ch]))
    b.write("diag", b"x")
    assert out == [("console", b"ab\n")]
    b.write("console", b"efghij")  # reaches max_bytes
    assert out[-1] == ("console", b"cdefghij")
    b.flush()
    assert out[-1] == ("diag", b"x") and len(out) == 3
    b.flush()
    assert len(out) == 3
