"""guest/scx/watch.py: the kernel log tail, and the watch over a real child and a fake sysfs."""

import os
import signal
import sys
import threading
import time

import pytest
from scx_fakes import Recorder

from guest.scx.child import Child
from guest.scx.exit_parse import KmsgExitParser
from guest.scx.log_pump import LogPump
from guest.scx.sysfs import ScxSysfs
from guest.scx.watch import ExitWatcher, KmsgTail


def boottime():
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def test_kmsg_tail_starts_at_the_end(tree):
    tree.kmsg('sched_ext: BPF scheduler "old" disabled (scx_bpf_error)')
    parser = KmsgExitParser()
    tail = KmsgTail(str(tree.root / "dev/kmsg"), parser)
    assert tail.available and tail.poll() == 0 and parser.result() is None
    with open(tree.root / "dev/kmsg", "a") as f:
        f.write('3,9,100,-;sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)\n')
        f.write(" SUBSYSTEM=cpu\n")  # a dict line of the record above
        f.write("3,10,101,-;sched_ext: qmap: test trig")
        f.flush()
        assert tail.poll() == 1
        f.write("gering error\n")
    assert tail.poll() == 1
    e = parser.result()
    assert (e.ops, e.message) == ("qmap", "test triggering error")
    tail.close()
    assert not KmsgTail(str(tree.root / "missing"), parser).available


class Harness:
    """A real child under watch, with the fake tree standing in for sched_ext."""

    def __init__(self, tree, code, grace_s=0.5):
        self.tree = tree
        tree.put("root/ops", "fake\n")
        tree.put("state", "enabled\n")
        self.child = Child.spawn(sys.executable, ["-c", code])
        self.rec = Recorder()
        self.pump = LogPump(self.child.fds, self.rec)
        self.pump.start()
        self.kmsg = KmsgTail(str(tree.root / "dev/kmsg"), KmsgExitParser("fake"))
        self.events = []
        self.fired = threading.Event()
        self.watcher = ExitWatcher(
            self.child, ScxSysfs(str(tree.root)), self.kmsg, self.pump, "fake",
            self.report, boottime, interval_s=0.02, grace_s=grace_s,
        )  # fmt: skip

    def report(self, ev):
        self.events.append(ev)
        self.fired.set()

    def close(self):
        assert self.rec.errors == []
        self.watcher.stop()
        self.child.signal(signal.SIGKILL)
        self.child.exited(5)
        self.child.reap()
        self.pump.stop(2)
        self.kmsg.close()
        self.child.close()


@pytest.fixture
def harness(tree):
    made = []

    def make(code, **kw):
        h = Harness(tree, code, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_death_is_one_event_with_a_timestamp(harness):
    h = harness("import time; print('running', flush=True); time.sleep(60)")
    h.watcher.start()
    time.sleep(0.1)
    t0 = boottime()
    os.kill(h.child.pid, signal.SIGKILL)  # an OOM kill, say
    assert h.fired.wait(5)
    ev = h.events[0]
    assert ev.trigger == "died" and ev.exit_status == "killed by SIGKILL"
    assert t0 <= ev.t_ns <= boottime()
    assert ev.t_ns - t0 < 500_000_000  # seen at once, not at the next state poll
    assert ev.exit is None  # no kernel line, no EXIT: line in this fake
    time.sleep(0.2)
    assert len(h.events) == 1


def test_disable_is_seen_while_the_process_lives_and_reasons_are_read(harness, tree):
    h = harness("import time; time.sleep(60)")
    h.watcher.start()
    time.sleep(0.1)
    t0 = boottime()
    tree.put("state", "disabling\n")
    tree.kmsg('sched_ext: BPF scheduler "fake" disabled (runnable task stall)', 3)
    tree.kmsg("sched_ext: fake: kworker/0:1[42] failed to run for 5.012s", 3)
    assert h.fired.wait(5)
    ev = h.events[0]
    assert (ev.trigger, ev.state, ev.exit_status) == ("disabled", "disabling", "")
    assert (ev.exit.kind, ev.exit.task.pid, ev.exit.stall_s) == ("ERROR_STALL", 42, 5.012)
    assert t0 <= ev.t_ns < t0 + 200_000_000
    m = ev.as_map()
    assert m["exit"]["task"] == {"comm": "kworker/0:1", "pid": 42}
    assert m["headline"] == "runnable task stall: kworker/0:1[42] failed to run for 5.012s"


def test_reason_waits_for_the_exit_line_within_the_grace(harness, tree):
    code = (
        "import sys, time; time.sleep(0.3);"
        "print('EXIT: scx_bpf_error (test triggering error)', file=sys.stderr, flush=True)"
    )
    h = harness(code)
    h.kmsg.close()  # no kernel log: the scheduler's own line has to do
    h.watcher.start()
    tree.put("state", "disabled\n")
    assert h.fired.wait(5)
    ev = h.events[0]
    assert ev.trigger == "disabled"
    assert (ev.exit.kind, ev.exit.message, ev.exit.source) == (
        "ERROR_BPF", "test triggering error", "stderr",
    )  # fmt: skip


def test_stop_before_anything_sends_no_event(harness, tree):
    h = harness("import time; time.sleep(60)")
    h.watcher.start()
    time.sleep(0.05)
    h.watcher.stop()
    tree.put("state", "disabled\n")
    os.kill(h.child.pid, signal.SIGKILL)
    time.sleep(0.2)
    assert h.events == []


def test_death_and_disable_together_make_one_event(harness, tree):
    h = harness("import time; time.sleep(60)")
    h.watcher.start()
    time.sleep(0.05)
    tree.put("state", "disabled\n")
    os.kill(h.child.pid, signal.SIGKILL)
    assert h.fired.wait(5)
    time.sleep(0.3)
    assert len(h.events) == 1


def test_a_long_kernel_message_still_fits_the_exit_frame(harness, tree):
    from guest import wire

    h = harness("import time; time.sleep(60)")
    h.watcher.start()
    tree.put("state", "disabling\n")
    tree.kmsg('sched_ext: BPF scheduler "fake" disabled (scx_bpf_error)', 3)
    tree.kmsg("sched_ext: fake: " + "q" * 6000, 3)
    assert h.fired.wait(5)
    ev = h.events[0]
    assert ev.exit.message == "q" * 4096
    wire.decode_frame(wire.encode_frame(wire.FrameType.SCHED_EXIT, ev.as_map()))


def test_a_slow_kernel_is_waited_for_until_it_has_disabled(harness, tree):
    """Under TCG the disable lines come long after the state left enabled (every task is
    switched out first): the event waits for them, and keeps the time of the state change."""
    h = harness("import time; time.sleep(60)", grace_s=5.0)
    h.watcher.start()
    time.sleep(0.1)
    t0 = boottime()
    tree.put("state", "disabling\n")
    time.sleep(1.5)
    assert not h.fired.is_set()
    tree.kmsg('sched_ext: BPF scheduler "fake" disabled (runnable task stall)', 3)
    tree.kmsg("sched_ext: fake: watchdog failed to check in for 30.004s", 3)
    tree.put("state", "disabled\n")
    assert h.fired.wait(5)
    ev = h.events[0]
    assert ev.exit.kind == "ERROR_STALL" and ev.exit.stall_s == 30.004 and ev.exit.task is None
    assert ev.t_ns - t0 < 200_000_000


def test_disabled_without_our_lines_is_reported_at_once(harness, tree):
    h = harness("import time; time.sleep(60)", grace_s=5.0)
    h.watcher.start()
    time.sleep(0.1)
    tree.kmsg('sched_ext: BPF scheduler "other" disabled (scx_bpf_error)', 3)
    t0 = time.monotonic()
    tree.put("state", "disabled\n")
    assert h.fired.wait(5)
    assert time.monotonic() - t0 < 1.0 and h.events[0].exit is None
