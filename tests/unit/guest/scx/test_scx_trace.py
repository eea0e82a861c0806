"""guest/scx/trace.py against a fake tracefs: event switch, bounded drains, SysRq-D."""

import os
import threading
import time

from scx_fakes import FakeTree

from guest.scx.trace import TraceDump

LINE = "          <idle>-0       [001] d.h2.    42.1: sched_ext_dump: {}\n"


def append(tree, text):
    with open(tree.tracing / "trace_pipe", "a") as f:
        f.write(text)


def test_enable_switches_the_event_on_and_close_off(tree):
    (tree.tracing / "tracing_on").write_text("0\n")
    t = TraceDump(str(tree.root))
    assert t.enable(), t.error
    enable = tree.tracing / "events/sched_ext/sched_ext_dump/enable"
    # control files are written in place, as sysfs takes them (no truncation)
    assert (
        enable.read_text().strip() == "1"
        and (tree.tracing / "tracing_on").read_text().strip() == "1"
    )
    t.close()
    assert enable.read_text().strip() == "0"
    t.close()  # twice is fine


def test_drain_reads_what_arrived_and_stops_when_quiet(tree):
    t = TraceDump(str(tree.root))
    assert t.enable()
    assert t.drain(quiet_s=0.02) == b""
    dump = "".join(LINE.format(f"CPU {i}   : nr_run=1") for i in range(50))
    append(tree, dump)
    t0 = time.monotonic()
    assert t.drain(deadline_s=2, quiet_s=0.05) == dump.encode()
    assert time.monotonic() - t0 < 0.5
    assert t.drain(quiet_s=0.01) == b""  # consumed, as trace_pipe reads are
    t.close()


def test_drain_is_bounded_in_bytes_and_time(tree):
    t = TraceDump(str(tree.root))
    assert t.enable()
    append(tree, "x" * 100_000)
    assert len(t.drain(max_bytes=10_000)) == 10_000
    stop = threading.Event()

    def writer():  # a dump that never ends
        while not stop.is_set():
            append(tree, LINE.format("more"))
            time.sleep(0.005)

    w = threading.Thread(target=writer)
    w.start()
    try:
        t0 = time.monotonic()
        t.drain(deadline_s=0.3, quiet_s=0.2)
        assert time.monotonic() - t0 < 0.6
    finally:
        stop.set()
        w.join()
    t.close()


def test_debugfs_tracing_dir_is_found(tmp_path):
    tree = FakeTree(tmp_path / "r", sched_ext=False)
    d = tree.root / "sys/kernel/debug/tracing"
    (d / "events/sched_ext/sched_ext_dump").mkdir(parents=True)
    (d / "events/sched_ext/sched_ext_dump/enable").write_text("0")
    (d / "trace_pipe").write_text("")
    t = TraceDump(str(tree.root))
    assert t.enable(), t.error
    assert t.dir == str(d)
    t.close()


def test_missing_tracefs_or_event(tmp_path):
    bare = FakeTree(tmp_path / "bare", sched_ext=False)
    t = TraceDump(str(bare.root))
    assert not t.enable() and "no tracefs" in t.error
    assert t.drain() == b"" and t.sysrq_dump() == b""
    (bare.root / "sys/kernel/tracing").mkdir()
    (bare.root / "sys/kernel/tracing/trace_pipe").write_text("")
    t2 = TraceDump(str(bare.root))
    assert not t2.enable() and "no sched_ext_dump tracepoint" in t2.error


def test_tracefs_is_mounted_whenmissing(tmp_path):
    bare = FakeTree(tmp_path / "bare", sched_ext=False)
    mounts = []

    def mount(source, target, fstype):
        mounts.append((source, target, fstype))
        ev = os.path.join(target, "events/sched_ext/sched_ext_dump")
        os.makedirs(ev)
        open(os.path.join(ev, "enable"), "w").close()
        open(os.path.join(target, "trace_pipe"), "w").close()

    t = TraceDump(str(bare.root), mount=mount)
    assert t.enable(), t.error
    assert mounts == [("tracefs", str(bare.root / "sys/kernel/tracing"), "tracefs")]
    t.close()


def test_sysrq_d_dump_is_collected(tree):
    """A fake kernel answers the write of "D" to /proc/sysrq-trigger with dump lines."""
    trigger = tree.root / "proc/sysrq-trigger"
    os.mkfifo(trigger)
    got = []

    def kernel():
        with open(trigger, "rb") as f:
            key = f.read(1)
            got.append(key)
            if key == b"D":
                append(
                    tree, LINE.format("fake: root") + LINE.format("Debug dump triggered by SysRq-D")
                )

    k = threading.Thread(target=kernel)
    k.start()
    t = TraceDump(str(tree.root))
    assert t.enable()
    append(tree, LINE.format("left over"))
    data = t.sysrq_dump(deadline_s=2, quiet_s=0.1).decode()
    k.join(2)
    assert got == [b"D"]
    assert (tree.root / "proc/sys/kernel/sysrq").read_text().strip() == "1"
    lines = [ln.split("sched_ext_dump: ")[1] for ln in data.splitlines()]
    assert lines == ["left over", "fake: root", "Debug dump triggered by SysRq-D"]
    t.close()
