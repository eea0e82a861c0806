"""guest/schedphase.py: the init's scheduler phase around a fake scheduler on a fake kernel tree.

(Here rather than beside test_guest_init.py: it shares this directory's fakes.)
"""

import threading
import time
from types import SimpleNamespace

from scx_fakes import FakeTree

from guest.rundoc import Scheduler
from guest.schedphase import SchedulerPhase
from guest.wire import ExitCode, FrameType


class FakeOut:
    """The parts of guest.reporter.Reporter the phase uses."""

    def __init__(self, recorder):
        self.recorder = recorder
        self.bulk = SimpleNamespace(send=recorder)
        self.kmsg_sent = 0

    def send(self, ftype, payload):
        self.recorder(ftype, payload)

    def log(self, level, msg):
        self.recorder(FrameType.LOG, {"level": level, "msg": msg})

    def phase(self, name):
        self.recorder(FrameType.PHASE, {"name": name, "t_ns": 1})

    def send_kmsg(self):
        self.kmsg_sent += 1


def _phase(tree, recorder, path, *args, stop=None):
    env = SimpleNamespace(root=str(tree.root), system=None)
    sched = Scheduler(path, (str(tree.root), *args), (("SCHEDLAB_TEST", "1"),))
    return SchedulerPhase(env, FakeOut(recorder), sched, stop or threading.Event(),
                          attach_timeout_s=5.0)  # fmt: skip


def test_eevdf_starts_nothing(tree, recorder):
    p = SchedulerPhase(SimpleNamespace(root=str(tree.root)), FakeOut(recorder), Scheduler(),
                       threading.Event())  # fmt: skip
    assert p.start() is None and p.run is None
    p.finish()
    assert recorder.frames == []


def test_an_exit_during_the_test_stops_the_workload_and_is_reported(tree, recorder, fake_scheduler):
    stop = threading.Event()
    p = _phase(tree, recorder, fake_scheduler, "error", "qmap", stop=stop)
    assert p.start() is None
    assert recorder.of(FrameType.SCHED_ATTACH)[0]["ops"] == "qmap"
    assert stop.wait(5.0), "the scheduler's exit did not stop the workload"
    t_stop = time.monotonic()
    assert p.exit_reason() == (
        "scheduler scx_fake was disabled during the test: scx_bpf_error: test triggering error"
    )
    p.finish()
    p.finish()  # once only
    # SIGINT made it report at once, not after its own 0.3 s pause.
    assert time.monotonic() - t_stop < 3.0
    stop_frames = recorder.of(FrameType.SCHED_STOP)
    assert len(stop_frames) == 1 and stop_frames[0]["status"] == "exited"
    assert b"EXIT: scx_bpf_error (test triggering error)" in recorder.log("stderr")
    assert p.out.kmsg_sent == 1
    types = recorder.types()
    assert types.index(FrameType.SCHED_EXIT) < types.index(FrameType.SCHED_STOP)


def test_a_load_failure_ends_the_run_with_its_output(tree, recorder, fake_scheduler):
    p = _phase(tree, recorder, fake_scheduler, "die")
    code, why = p.start()
    assert code is ExitCode.SETUP_FAILED
    assert why.startswith("libbpf: prog 'fake_dispatch': BPF program load failed")
    assert "exited before attaching to sched_ext (exited 1)" in why
    p.finish()
    assert recorder.of(FrameType.SCHED_STOP)[0]["status"] == "not_started"


def test_no_sched_ext(tmp_path, recorder, fake_scheduler):
    tree = FakeTree(tmp_path / "bare", sched_ext=False)
    code, why = _phase(tree, recorder, fake_scheduler, "normal").start()
    assert (code, why) == (
        ExitCode.SETUP_FAILED,
        "this kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT)",
    )


def test_a_clean_stop_after_the_test(tree, recorder, fake_scheduler):
    p = _phase(tree, recorder, fake_scheduler, "normal", "simple")
    assert p.start() is None
    p.sysrq_dump()  # the fake kernel writes no dump lines: one empty DUMP frame says so
    sysrq = [d for d in recorder.of(FrameType.DUMP) if d["trigger"] == "sysrq"]
    assert sysrq == [{"source": "sched_ext_dump", "data": b"", "trigger": "sysrq", "part": 0}]
    p.finish()
    assert p.exit_reason() == ""
    stop = recorder.of(FrameType.SCHED_STOP)[0]
    assert (stop["status"], stop["detached"], stop["killed"]) == ("clean", True, False)
