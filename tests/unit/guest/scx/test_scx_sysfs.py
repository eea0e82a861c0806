"""guest/scx/sysfs.py against a fake /sys/kernel/sched_ext tree."""

import threading
import time

from scx_fakes import FakeTree

from guest.scx.sysfs import NO_SCHED_EXT, ScxSysfs


def later(delay, fn):
    t = threading.Timer(delay, fn)
    t.start()
    return t


def test_absent_reasons(tmp_path):
    assert "sysfs is not mounted" in ScxSysfs(str(tmp_path)).absent_reason()
    no_scx = FakeTree(tmp_path / "plain", sched_ext=False)
    assert ScxSysfs(str(no_scx.root)).absent_reason() == NO_SCHED_EXT
    assert "CONFIG_SCHED_CLASS_EXT" in NO_SCHED_EXT
    ok = FakeTree(tmp_path / "scx")
    assert ScxSysfs(str(ok.root)).absent_reason() == ""


def test_state_and_ops(tree):
    s = ScxSysfs(str(tree.root))
    assert (s.state(), s.ops()) == ("disabled", "")
    tree.put("root/ops", "simple\n")
    tree.put("state", "enabled\n")
    assert (s.state(), s.ops()) == ("enabled", "simple")


def test_waits_for_enabled_and_a_name(tree):
    s = ScxSysfs(str(tree.root))

    def load():
        tree.put("state", "enabling\n")
        time.sleep(0.05)
        tree.put("state", "enabled\n")  # the name comes a little later here
        time.sleep(0.05)
        tree.put("root/ops", "simple\n")

    t = later(0.1, load)
    t0 = time.monotonic()
    how, state, ops = s.wait_attached(time.monotonic() + 5, lambda dt: time.sleep(dt) or False)
    elapsed = time.monotonic() - t0
    t.join()
    assert (how, state, ops) == ("attached", "enabled", "simple")
    assert 0.2 <= elapsed < 1.0


def test_timeout_returns_near_the_deadline(tree):
    tree.put("state", "enabling\n")
    s = ScxSysfs(str(tree.root))
    t0 = time.monotonic()
    how, state, ops = s.wait_attached(t0 + 0.3, lambda dt: time.sleep(dt) or False)
    assert (how, state, ops) == ("timed_out", "enabling", "")
    assert 0.3 <= time.monotonic() - t0 < 0.5


def test_exit_ends_the_wait_at_once(tree):
    s = ScxSysfs(str(tree.root))
    calls = []

    def wait_exit(dt):
        calls.append(dt)
        return len(calls) == 3

    how, _, _ = s.wait_attached(time.monotonic() + 5, wait_exit)
    assert how == "exited" and len(calls) == 3
    assert calls[0] <= calls[1] <= calls[2] <= 0.05  # backoff, capped
