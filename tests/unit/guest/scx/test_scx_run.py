"""guest/scx/run.py end to end: fake schedulers (real processes) on a fake sched_ext tree.

fake_scheduler.py plays the scheduler and the kernel's side of its own lifecycle; the
``kernel`` fixture detaches a scheduler whose process dies, as closing its struct_ops
link does.
"""

import os
import signal
import sys
import threading
import time

import pytest

from guest.scx import outcomes
from guest.scx.run import DUMP_SOURCE, SchedulerRun
from guest.wire import FrameType

_RUNS: list[SchedulerRun] = []


@pytest.fixture(autouse=True)
def stop_every_run():
    """Whatever a test asserted, no scheduler it started outlives it."""
    yield
    while _RUNS:
        run = _RUNS.pop()
        run.stop()
        assert run.pid == 0 or no_process(run.pid)


def tracked(run):
    _RUNS.append(run)
    return run


def make_run(fake_scheduler, tree, recorder, mode, **kw):
    kw.setdefault("attach_timeout_s", 10)
    kw.setdefault("watch_interval_s", 0.02)
    return tracked(
        SchedulerRun(fake_scheduler, [str(tree.root), mode], recorder, str(tree.root), **kw)
    )


def wait_for(cond, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def no_process(pid):
    """The pid is gone (a zombie would still be there: reaping is part of the contract)."""
    return not os.path.exists(f"/proc/{pid}")


def test_clean_lifecycle(fake_scheduler, tree, recorder):
    run = make_run(fake_scheduler, tree, recorder, "normal")
    att = run.start()
    assert att.status == outcomes.ATTACHED and att.attached
    assert att.ops == "fake" and att.pid == run.pid > 0
    assert 0 < att.attach_ms < 10_000
    assert recorder.of(FrameType.SCHED_ATTACH)[0]["attached"] is True
    assert run.watch(lambda ev: None)
    stop = run.stop()
    assert stop.status == outcomes.CLEAN and stop.problems == ()
    assert (stop.detached, stop.killed, stop.exit_status, stop.state) == (
        True,
        False,
        "exited 0",
        "disabled",
    )
    assert stop.exit.kind == "UNREG" and stop.exit.source == "kmsg+stderr"
    assert 0 < stop.wait_ms < 8000
    assert b"fake: attached" in recorder.log("stdout")
    assert b"EXIT: unregistered from user space" in recorder.log("stderr")
    assert FrameType.SCHED_EXIT not in recorder.types()  # our own stop is no exit event
    sent = recorder.of(FrameType.SCHED_STOP)
    assert len(sent) == 1 and sent[0]["status"] == "clean" and sent[0]["exit"]["kind"] == "UNREG"
    assert run.stop() is stop  # idempotent, nothing sent twice
    assert len(recorder.of(FrameType.SCHED_STOP)) == 1
    assert no_process(att.pid)
    assert (tree.tracing / "events/sched_ext/sched_ext_dump/enable").read_text().strip() == "0"


def test_no_sched_ext(fake_scheduler, tmp_path, recorder):
    from scx_fakes import FakeTree

    tree = FakeTree(tmp_path / "plain", sched_ext=False)
    run = make_run(fake_scheduler, tree, recorder, "normal")
    att = run.start()
    assert att.status == outcomes.SYSFS_ABSENT and not att.attached
    assert att.message == "this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT)"
    assert run.pid == 0  # nothing was started
    assert not run.watch(lambda ev: None)
    assert run.stop().status == outcomes.NOT_STARTED


def test_another_scheduler_already_loaded(fake_scheduler, tree, recorder):
    tree.put("root/ops", "simple\n")
    tree.put("state", "enabled\n")
    att = make_run(fake_scheduler, tree, recorder, "normal").start()
    assert att.status == outcomes.BUSY and "'simple'" in att.message and att.pid == 0


def test_spawn_failure(tree, recorder, tmp_path):
    run = tracked(SchedulerRun(str(tmp_path / "nope"), [], recorder, str(tree.root)))
    att = run.start()
    assert att.status == outcomes.SPAWN_FAILED
    assert att.message.startswith(f"cannot start {tmp_path / 'nope'}: No such file")


def test_dies_before_attaching_with_its_output_first(fake_scheduler, tree, recorder):
    run = make_run(fake_scheduler, tree, recorder, "die")
    t0 = time.monotonic()
    att = run.start()
    assert time.monotonic() - t0 < 5
    assert att.status == outcomes.DIED and att.exit_status == "exited 1"
    lines = att.message.splitlines()
    assert lines[0] == "libbpf: prog 'fake_dispatch': BPF program load failed: Permission denied"
    assert "--- loop: the next 3 lines repeat 40 times ---" in lines
    assert "R2 invalid mem access 'scalar'" in lines and "Failed to load skel" in lines
    assert lines[-1] == "-- scx_fake exited before attaching to sched_ext (exited 1)"
    assert len(lines) < 30
    assert recorder.of(FrameType.SCHED_ATTACH)[0]["message"] == att.message
    assert b"repeat" not in recorder.log("stderr")  # the log itself is sent whole
    assert no_process(att.pid)


def test_kernel_refuses_the_scheduler(fake_scheduler, tree, recorder):
    att = make_run(fake_scheduler, tree, recorder, "die_kernel").start()
    assert att.status == outcomes.DIED
    assert att.message.startswith("EXIT: runtime error (ops.init() failed (-22))")
    assert att.message.endswith("the kernel says: runtime error: ops.init() failed (-22)")


def test_never_attaches_times_out_and_is_killed(fake_scheduler, tree, recorder):
    run = make_run(fake_scheduler, tree, recorder, "never", attach_timeout_s=0.5)
    t0 = time.monotonic()
    att = run.start()
    assert 0.5 <= time.monotonic() - t0 < 4
    assert att.status == outcomes.TIMED_OUT and att.exit_status == "killed by SIGKILL"
    assert att.message.startswith(
        "scx_fake did not attach within 0.5 s (sched_ext state 'disabled'); killed"
    )
    assert "loading BPF programs..." in att.message
    assert no_process(att.pid)


def test_attach_wait_can_be_cancelled(fake_scheduler, tree, recorder):
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    run = make_run(fake_scheduler, tree, recorder, "never", attach_timeout_s=30)
    t0 = time.monotonic()
    att = run.start(cancel)
    assert time.monotonic() - t0 < 3
    assert att.status == outcomes.CANCELLED and no_process(att.pid)


def test_ignores_sigint_so_it_is_killed(fake_scheduler, tree, recorder, kernel):
    run = make_run(fake_scheduler, tree, recorder, "ignore_int", stop_timeout_s=0.5)
    assert run.start().attached
    kernel.follow(run.pid)
    run.watch(lambda ev: None)
    stop = run.stop()
    assert stop.status == outcomes.KILLED and stop.killed and stop.detached
    assert stop.exit_status == "killed by SIGKILL"
    assert stop.problems == ("had to be killed: still running 0.5 s after SIGINT",)
    assert 500 <= stop.wait_ms < 4000


def test_did_not_detach(fake_scheduler, tree, recorder):
    """No kernel detaches it here: the state stays enabled after the process is gone."""
    run = make_run(
        fake_scheduler, tree, recorder, "ignore_int", stop_timeout_s=0.3, detach_timeout_s=0.3
    )
    assert run.start().attached
    stop = run.stop()
    assert stop.status == outcomes.NOT_DETACHED and not stop.detached and stop.killed
    assert "did not detach: sched_ext state is 'enabled' after scx_fake ended" in stop.problems
    assert recorder.of(FrameType.SCHED_STOP)[0]["problems"] == list(stop.problems)


@pytest.mark.parametrize(
    "mode,kind,message",
    [
        ("error", "ERROR_BPF", "test triggering error"),
        ("stall", "ERROR_STALL", "python3[187] failed to run for 5.136s"),
    ],
)
def test_error_exit_during_the_workload(fake_scheduler, tree, recorder, mode, kind, message):
    events = []
    got = threading.Event()
    run = make_run(fake_scheduler, tree, recorder, mode)
    assert run.start().attached
    t_attach = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    run.watch(lambda ev: (events.append(ev), got.set()))
    assert got.wait(5)
    ev = events[0]
    assert ev.trigger == "disabled" and ev.exit.kind == kind and ev.exit.message == message
    assert ev.exit.ops == "fake" and ev.exit.backtrace == ("scx_bpf_error_bstr+0x6d/0x90",)
    assert t_attach < ev.t_ns
    if mode == "stall":
        assert (ev.exit.task.comm, ev.exit.task.pid, ev.exit.stall_s) == ("python3", 187, 5.136)
    # the kernel's dump went out first, then the event
    types = recorder.types()
    dumps = recorder.of(FrameType.DUMP)
    assert dumps and types.index(FrameType.DUMP) < types.index(FrameType.SCHED_EXIT)
    assert dumps[0]["source"] == DUMP_SOURCE and dumps[0]["trigger"] == "exit"
    assert b"sched_ext_dump: fake: root" in dumps[0]["data"]
    frame = recorder.of(FrameType.SCHED_EXIT)[0]
    assert frame["exit"]["kind"] == kind and frame["dump_bytes"] == len(dumps[0]["data"])
    assert frame["headline"] == f"{ev.exit.reason}: {message}"
    # the scheduler's own words arrive a moment later, and are kept
    assert wait_for(lambda: run.debug_dump() != "")
    assert run.debug_dump().startswith("fake: root\nkworker/1:2[57] triggered exit kind 1025:")
    assert wait_for(lambda: run.child.exited(0))  # it leaves by itself, as UEI_REPORT does
    stop = run.stop()
    assert stop.status == outcomes.EXITED and stop.detached and not stop.killed
    assert stop.exit.kind == kind and stop.exit_status == "exited 0"
    assert len(recorder.of(FrameType.SCHED_EXIT)) == 1


def test_crash_during_the_workload(fake_scheduler, tree, recorder, kernel):
    got = threading.Event()
    events = []
    run = make_run(fake_scheduler, tree, recorder, "crash")
    assert run.start().attached
    kernel.follow(run.pid)
    run.watch(lambda ev: (events.append(ev), got.set()))
    assert got.wait(5)
    ev = events[0]
    assert ev.trigger == "died" and ev.exit_status.startswith("killed by SIGSEGV")
    assert ev.exit is None or ev.exit.kind == "UNREG"
    assert FrameType.DUMP not in recorder.types() or ev.exit is None
    stop = run.stop()
    assert stop.status == outcomes.EXITED and stop.exit_status == ev.exit_status


def test_reaper_claim_keeps_the_status(fake_scheduler, tree, recorder, kernel):
    """PID 1's reaper takes the dead scheduler before the watch: the claim keeps its status."""
    run = make_run(fake_scheduler, tree, recorder, "crash")
    assert run.start().attached
    kernel.follow(run.pid)
    pid, raw = os.waitpid(run.pid, 0)  # the reaper is first
    assert run.claim_status(pid, raw) and not run.claim_status(pid + 1, raw)
    got = threading.Event()
    run.watch(lambda ev: got.set())
    assert got.wait(5)
    assert run.exit_event.exit_status.startswith("killed by SIGSEGV")
    run.stop()


def test_a_flood_of_output_under_a_blocked_port_does_not_stall_anything(fake_scheduler, tree):
    release = threading.Event()
    frames = []

    def slow_send(ftype, payload):
        if ftype is FrameType.SCHED_LOG:
            release.wait()
        frames.append((ftype, payload))
        return True

    run = tracked(SchedulerRun(fake_scheduler, [str(tree.root), "flood"], slow_send,
                               str(tree.root), attach_timeout_s=10))  # fmt: skip
    try:
        assert run.start().attached
        everything = len(b"fake: attached\n") + (4 << 20) + len(b"flood done\n")
        assert wait_for(lambda: run.pump.read_bytes == everything, 10)  # the writer never waited
    finally:
        release.set()
    stop = run.stop()
    assert stop.status == outcomes.CLEAN
    logs = [p for t, p in frames if t is FrameType.SCHED_LOG]
    out = [p for p in logs if p["stream"] == "stdout"]
    assert out[-1]["eof"] and out[-1]["dropped"] > 0
    assert sum(len(p["data"]) for p in out) + out[-1]["dropped"] == len(b"fake: attached\n") + (
        4 << 20
    )


def test_sysrq_dump_goes_out_as_dump_frames(fake_scheduler, tree, recorder):
    trigger = tree.root / "proc/sysrq-trigger"
    os.mkfifo(trigger)

    def kernel():
        with open(trigger, "rb") as f:
            if f.read(1) == b"D":
                with open(tree.tracing / "trace_pipe", "a") as t:
                    t.write(
                        "  python3-1 [000] d..1. 5.0: sched_ext_dump: Debug dump triggered by SysRq-D\n"
                    )

    k = threading.Thread(target=kernel)
    k.start()
    run = make_run(fake_scheduler, tree, recorder, "normal")
    assert run.start().attached
    data = run.sysrq_dump()
    k.join(2)
    assert b"Debug dump triggered by SysRq-D" in data
    d = recorder.of(FrameType.DUMP)[-1]
    assert (d["source"], d["trigger"], d["data"]) == (DUMP_SOURCE, "sysrq", data)
    assert run.stop().status == outcomes.CLEAN


def test_no_tracefs_is_a_warning_not_a_failure(fake_scheduler, tree, recorder):
    import shutil

    shutil.rmtree(tree.tracing)
    run = make_run(fake_scheduler, tree, recorder, "normal")
    assert run.start().attached
    logs = [p["msg"] for p in recorder.of(FrameType.LOG)]
    assert any("sched_ext dumps will not be captured: no tracefs" in m for m in logs)
    assert run.sysrq_dump() == b""
    assert run.stop().status == outcomes.CLEAN


def test_sigint_goes_to_our_child_only(fake_scheduler, tree, recorder):
    """stop() signals through the pidfd: this test process keeps running undisturbed."""
    seen = []
    old = signal.signal(signal.SIGINT, lambda *a: seen.append(a))
    try:
        run = make_run(fake_scheduler, tree, recorder, "normal")
        assert run.start().attached
        assert run.stop().status == outcomes.CLEAN
    finally:
        signal.signal(signal.SIGINT, old)
    assert seen == []


def test_huge_output_still_fits_the_frames(tree, recorder):
    """Long lines and a long EXIT message are cut to what the wire schemas allow."""
    code = (
        "import sys; sys.stderr.write(('z' * 20000 + '\\n') * 50);"
        "sys.stderr.write('EXIT: runtime error (' + 'm' * 10000 + ')\\n'); sys.exit(1)"
    )
    run = tracked(SchedulerRun(sys.executable, ["-c", code], recorder, str(tree.root), name="huge"))
    att = run.start()
    assert att.status == outcomes.DIED
    assert att.message.splitlines()[0] == "z" * 512 + " [...]"
    assert len(att.message) <= outcomes.MESSAGE_MAX
    assert recorder.of(FrameType.SCHED_ATTACH)  # sent, and valid (the fixture checks)
