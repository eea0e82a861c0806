"""PID 1 and the init process against a fake root directory and a fake System.

The init process's phases (:class:`guest.lifecycle.GuestRun`) run in-process; PID 1's
supervision (:func:`guest.init.supervise`) forks for real, so crashes (a Python exception, a
native fault, an unexpected exit) are real processes dying.
"""

import errno
import hashlib
import io
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import tty

import pytest

from guest import lifecycle, rundoc, transfer, wire
from guest.crash import CRASHED
from guest.env import Env
from guest.init import supervise
from guest.lifecycle import GuestRun
from guest.rundoc import FileEntry
from guest.spec import RunSpec
from guest.wire import ExitCode, FrameDecoder, FrameType
from guest.worker_pool import WorkerPool

RELEASE = "7.2.0-test"


class FakeSystem:
    def __init__(self, mount_errno=None):
        self.calls = []
        self.mount_errno = mount_errno or {}

    def mount(self, source, target, fstype, flags=0, data=""):
        self.calls.append(("mount", fstype, target))
        if fstype in self.mount_errno:
            raise OSError(self.mount_errno[fstype], os.strerror(self.mount_errno[fstype]))

    def finit_module(self, fd, params=""):
        self.calls.append(("finit_module", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))

    def reboot(self):
        self.calls.append(("reboot",))

    def sync(self):
        self.calls.append(("sync",))

    def kernel_release(self):
        return RELEASE

    def cpus(self):
        return 2

    def boot_ns(self):
        return time.monotonic_ns()


class BulkPort:
    """The bulk port as a pty in raw mode: the guest opens the slave by its path and reads
    and writes frames as on /dev/vport0p1; this side plays the host, sending ``inputs``
    and collecting every byte the guest writes."""

    def __init__(self, link, inputs):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no newline translation: a byte pipe both ways
        os.symlink(os.ttyname(self.slave), link)
        self.data = bytearray()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._writer = threading.Thread(target=self._write, args=(inputs,), daemon=True)
        self._reader.start()
        self._writer.start()

    def _write(self, data):
        try:
            view = memoryview(data)
            while view and not self._stop.is_set():
                view = view[os.write(self.master, view[:4096]) :]
        except OSError:
            pass

    def _read(self):
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.data += os.read(self.master, 65536)
                except OSError:
                    return

    def output(self):
        """Everything the guest wrote (after its run: waits until the pty is drained)."""
        n = -1
        while n != len(self.data):
            n = len(self.data)
            time.sleep(0.1)
        return bytes(self.data)

    def close(self):
        self._stop.set()
        self._reader.join(2)
        os.close(self.master)
        os.close(self.slave)


PORTS = {}


@pytest.fixture(autouse=True)
def _close_ports():
    yield
    while PORTS:
        PORTS.popitem()[1].close()


def run_inputs(files=(), doc=None, **changes):
    """The bytes of one transfer: a cgroup-spinners run (0.2 s, any fairness) with ``changes``."""
    spec = RunSpec("cgroup-spinners", duration=0.2, fairness=1.0)._replace(**changes)
    entries = [
        FileEntry(kind, name, 0o755, len(data), hashlib.sha256(data).hexdigest())
        for kind, name, data in files
    ]
    doc = doc or rundoc.build(spec, files=entries)
    return b"".join(transfer.frames(doc, lambda i: io.BytesIO(files[i][2])))


def make_root(tmp_path, inputs=None, sentinel="img-1"):
    r = tmp_path / "root"
    for d in ("proc", "dev", "sys/fs/cgroup", "sys/class/virtio-ports/vport0p1", "etc", "run"):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / "proc/schedstat").write_text("version 17\n")
    (r / "etc/schedlab-image-id").write_text("img-1\n")
    if sentinel is not None:
        (r / "schedlab.sentinel").write_text(sentinel + "\n")
    (r / "sys/class/virtio-ports/vport0p1/name").write_text("org.schedlab.bulk\n")
    PORTS[str(r)] = BulkPort(r / "dev/vport0p1", run_inputs() if inputs is None else inputs)
    (r / "dev/ttyS0").write_bytes(b"")
    (r / "dev/ttyS1").write_bytes(b"")
    (r / "dev/urandom").write_bytes(b"")
    (r / "dev/kmsg").write_bytes(b"6,1,1000000,-;Linux version 7.2.0-test\n")
    os.mkfifo(r / "dev/hvc0")
    return r


def frames_of(root):
    d = FrameDecoder()
    frames = d.feed(PORTS[str(root)].output()) + d.finish()
    assert d.stats.garbage_bytes == 0 and d.stats.truncated_bytes == 0
    return frames


def env_of(root, system, crash_fd=-1):
    return Env(system, str(root), False, 0.2, shutil.rmtree, crash_fd, inputs_timeout_s=10)


def run_guest(root, system=None, env=None):
    """The init process's phases in this process; returns (system, run, exit status)."""
    system = system or FakeSystem()
    run = GuestRun(env or env_of(root, system))
    status = run.run()
    return system, run, status


def run_pid1(root, child=None):
    """PID 1's supervision with a real fork; returns (PID 1's system, how the child ended)."""
    system = FakeSystem()

    def init_process(crash_fd):
        return GuestRun(env_of(root, FakeSystem(), crash_fd)).run()

    how = supervise(child or init_process, system, str(root), reap_all=False)
    return system, how


def kinds(frames):
    return [(f.type, f.payload.get("name") or f.payload.get("source")) for f in frames]


def test_happy_path_frame_sequence(tmp_path):
    root = make_root(tmp_path)
    system, run, status = run_guest(root)
    assert status == 0
    frames = frames_of(root)
    assert kinds(frames) == [
        (FrameType.SYS_RDY, None),
        (FrameType.DUMP, "kmsg"),
        (FrameType.PHASE, "setup"),
        (FrameType.INPUTS_ACK, None),
        (FrameType.PHASE, "workload"),
        (FrameType.PHASE, "verdict"),
        (FrameType.RESULT, None),
        (FrameType.PHASE, "shutdown"),
        (FrameType.EXIT, None),
    ]
    rdy = frames[0].payload
    assert (rdy["kernel"], rdy["cpus"], rdy["modules"]) == (RELEASE, 2, [])
    assert 0 < rdy["main_ns"] <= rdy["boot_ns"]
    assert b"Linux version" in frames[1].payload["data"]
    ack = frames[3].payload
    assert ack["ok"] and ack["files"] == [] and ack["entropy"] == "write"
    result = frames[6].payload
    assert result["passed"] is True, result["reason"]
    assert result["scenario"] == "steady" and len(result["workers"]) == 4
    assert "verdicts" not in result  # facts only: the host judges
    (step,) = result["steps"]  # the scenario runner's per-step record
    hold = [w for w in step["workers"] if w["phase"] == "hold"]
    assert len(hold) == 4 and [o["target"] for o in step["ops"]] == ["cg_0", "cg_1"]
    assert all(seg["work_units"] > 0 and seg["timeline"][0] == [0, 0, 0] for seg in hold)
    assert len({w["pid"] for w in result["workers"]}) == 4
    assert frames[-1].payload == {"code": ExitCode.OK}
    shutdown = frames[-2].payload
    assert shutdown["control"]["error"] == "" and shutdown["bulk_dropped"] == 0
    assert shutdown["workers"]["spawned"] == 4 and shutdown["workers"]["exit"] == "exit 0"
    assert run.pool.exit == "exit 0"  # the worker parent was reaped
    assert ("reboot",) not in system.calls  # PID 1 powers off, not the init process
    mounted = [c[1] for c in system.calls if c[0] == "mount"]
    assert mounted[:4] == ["proc", "sysfs", "devtmpfs", "cgroup2"]
    assert not (root / "sys/fs/cgroup/schedlab").exists()


def test_worker_parent_is_forked_before_any_thread(tmp_path, monkeypatch):
    # By identity, not by count: this test's own threads (the host side of the bulk port)
    # may come and go while the guest runs.
    at_fork: list[set[threading.Thread]] = []
    real_fork = WorkerPool.fork.__func__

    def fork(cls, *a, **kw):
        at_fork.append(set(threading.enumerate()))
        return real_fork(cls, *a, **kw)

    monkeypatch.setattr(WorkerPool, "fork", classmethod(fork))
    started: list[set[threading.Thread]] = []
    real_start = lifecycle.HostIo.start

    def start(self):
        real_start(self)
        started.append(set(threading.enumerate()))

    monkeypatch.setattr(lifecycle.HostIo, "start", start)
    root = make_root(tmp_path)
    base = set(threading.enumerate())
    run_guest(root)
    assert len(at_fork) == 1 and at_fork[0] <= base  # no thread of the guest's yet
    assert started and started[0] - base  # the host I/O threads start after the fork


def test_truncated_image_is_reported_with_the_kernel_log(tmp_path):
    root = make_root(tmp_path, sentinel=None)
    system, _, status = run_guest(root)
    frames = frames_of(root)
    assert kinds(frames) == [
        (FrameType.LOG, None),
        (FrameType.RESULT, None),
        (FrameType.DUMP, "kmsg"),
        (FrameType.PHASE, "shutdown"),
        (FrameType.EXIT, None),
    ]
    assert "schedlab.sentinel" in frames[0].payload["msg"]
    assert frames[1].payload["passed"] is False
    assert b"Linux version" in frames[2].payload["data"]
    assert frames[-1].payload["code"] == ExitCode.BAD_IMAGE
    assert "BAD_IMAGE" in (root / "dev/ttyS1").read_text()
    assert status == 0 and not any(c[0] == "finit_module" for c in system.calls)


def test_mismatched_sentinel_is_bad_image(tmp_path):
    root = make_root(tmp_path, sentinel="img-0")
    run_guest(root)
    assert frames_of(root)[-1].payload["code"] == ExitCode.BAD_IMAGE


def test_bad_run_document_gives_error_frames_and_exit_code(tmp_path):
    doc = rundoc.build(RunSpec("cgroup-spinners"))
    doc["scenario"]["workers"] = "lots"
    root = make_root(tmp_path, wire.encode_frame(FrameType.RUN, {"doc": doc}))
    run_guest(root)
    frames = frames_of(root)
    ack = next(f.payload for f in frames if f.type is FrameType.INPUTS_ACK)
    assert not ack["ok"] and "scenario.workers" in ack["error"]
    logs = [f.payload for f in frames if f.type is FrameType.LOG]
    assert any(p["level"] == "error" and "scenario.workers" in p["msg"] for p in logs)
    result = next(f.payload for f in frames if f.type is FrameType.RESULT)
    assert result["passed"] is False and "scenario.workers" in result["reason"]
    assert frames[-1].payload["code"] == ExitCode.BAD_SPEC


def test_files_are_installed_and_acknowledged(tmp_path):
    sched = os.urandom(200_000)  # more than the pty holds: the host side streams it
    files = [("scheduler", "scx_x", sched), ("lib", "l.so", b"")]
    root = make_root(tmp_path, run_inputs(files=files))
    _, run, status = run_guest(root)
    assert status == 0
    base = root / "run/schedlab/inputs"
    assert (base / "scheduler/scx_x").read_bytes() == sched
    assert os.access(base / "scheduler/scx_x", os.X_OK)
    ack = next(f.payload for f in frames_of(root) if f.type is FrameType.INPUTS_ACK)
    assert ack["ok"] and [f["path"] for f in ack["files"]] == [
        "/run/schedlab/inputs/scheduler/scx_x",
        "/run/schedlab/inputs/lib/l.so",
    ]
    assert ack["files"][0]["sha256"] == hashlib.sha256(sched).hexdigest()
    assert run.inputs.doc.files[0].name == "scx_x"


def test_no_inputs_is_reported_after_the_deadline(tmp_path):
    root = make_root(tmp_path, b"")
    system = FakeSystem()
    env = env_of(root, system)._replace(inputs_timeout_s=0.5)
    run_guest(root, system, env)
    frames = frames_of(root)
    ack = next(f.payload for f in frames if f.type is FrameType.INPUTS_ACK)
    assert not ack["ok"] and "no inputs from the host within 0.5 s" in ack["error"]
    assert frames[-1].payload["code"] == ExitCode.BAD_SPEC


def test_shutdown_while_waiting_for_inputs(tmp_path):
    root = make_root(tmp_path, b"")

    def host():
        fd = os.open(root / "dev/hvc0", os.O_WRONLY)  # blocks until init opens hvc0
        try:
            time.sleep(0.3)
            os.write(fd, b"S")
        finally:
            os.close(fd)

    threading.Thread(target=host, daemon=True).start()
    t0 = time.monotonic()
    run_guest(root)
    assert time.monotonic() - t0 < 8  # not the 10 s inputs deadline
    frames = frames_of(root)
    assert frames[-1].payload["code"] == ExitCode.SHUTDOWN


def test_modules_loaded_in_order_and_reported(tmp_path):
    root = make_root(tmp_path)
    moddir = root / "lib/modules" / RELEASE
    (moddir / "kernel").mkdir(parents=True)
    for name in ("kernel/virtio_mmio.ko", "irq-bypass.ko", "kvm.ko"):
        (moddir / name).write_bytes(b"\x7fELF")
    (moddir / "schedlab-load-order").write_text(
        "# load order\nkernel/virtio_mmio.ko\n\nirq-bypass.ko\nkvm.ko\nmissing.ko\n"
    )
    (root / "sys/module/kvm").mkdir(parents=True)  # built in
    system, _, _ = run_guest(root)
    loads = [c[1] for c in system.calls if c[0] == "finit_module"]
    assert loads == ["virtio_mmio.ko", "irq-bypass.ko"]
    frames = frames_of(root)
    mods = {m["name"]: m["status"] for m in frames[1].payload["modules"]}
    assert mods == {
        "virtio_mmio": "loaded",
        "irq_bypass": "loaded",
        "kvm": "present",
        "missing": "failed",
    }
    assert frames[0].type is FrameType.LOG and "missing" in frames[0].payload["msg"]


def test_required_mount_failure_fails_setup(tmp_path):
    root = make_root(tmp_path)
    system = FakeSystem(
        mount_errno={"cgroup2": errno.ENODEV, "tracefs": errno.ENODEV, "devtmpfs": errno.EBUSY}
    )
    run_guest(root, system)
    frames = frames_of(root)
    levels = [(f.payload["level"], f.payload["msg"]) for f in frames if f.type is FrameType.LOG]
    assert [lv for lv, _ in levels] == ["error", "warning"]  # EBUSY devtmpfs is fine
    assert frames[-1].payload["code"] == ExitCode.SETUP_FAILED


def test_no_bulk_port_still_powers_off(tmp_path):
    root = make_root(tmp_path)
    (root / "sys/class/virtio-ports/vport0p1/name").write_text("org.other\n")
    system, how = run_pid1(root)
    assert "not found" in (root / "dev/ttyS1").read_text()
    assert how == "exit 0" and system.calls == [("sync",), ("reboot",)]


def test_python_crash_goes_to_com2_and_com1_only(tmp_path, monkeypatch):
    def boom(*_args):
        raise RuntimeError("spec reader exploded")

    monkeypatch.setattr(lifecycle, "receive_inputs", boom)
    root = make_root(tmp_path)
    _, run, status = run_guest(root)
    assert status == CRASHED
    assert kinds(frames_of(root)) == [  # nothing after the crash
        (FrameType.SYS_RDY, None),
        (FrameType.DUMP, "kmsg"),
        (FrameType.PHASE, "setup"),
    ]
    for port in ("dev/ttyS1", "dev/ttyS0"):
        text = (root / port).read_text()
        assert "PANIC: init crashed: Traceback" in text
        assert "PANIC: RuntimeError: spec reader exploded" in text
    assert run.pool.exit == "exit 0"  # the worker parent is closed on the crash path too


def test_python_crash_under_pid1_is_reported_once_and_powers_off(tmp_path):
    root = make_root(tmp_path, run_inputs(duration=30.0, crash="init"))
    t0 = time.monotonic()
    system, how = run_pid1(root)
    assert time.monotonic() - t0 < 10
    assert how == f"exit {CRASHED}" and system.calls == [("sync",), ("reboot",)]
    com2 = (root / "dev/ttyS1").read_text()
    assert com2.count("PANIC: init crashed: Traceback") == 1
    assert "deliberate crash" in com2 and "init process (pid" not in com2
    frames = frames_of(root)
    assert kinds(frames)[-2:] == [(FrameType.PHASE, "workload"), (FrameType.LOG, None)]


def test_native_fault_becomes_panic_lines_and_power_off(tmp_path):
    root = make_root(tmp_path, run_inputs(crash="native"))
    system, how = run_pid1(root)
    assert how == "killed by SIGSEGV"
    assert system.calls == [("sync",), ("reboot",)]
    for port in ("dev/ttyS1", "dev/ttyS0"):
        lines = (root / port).read_text().splitlines()
        panic = [ln for ln in lines if ln.startswith("PANIC: ")]
        assert panic[0].startswith("PANIC: init process (pid ") and "killed by SIGSEGV" in panic[0]
        assert any("Fatal Python error: Segmentation fault" in ln for ln in panic)
        assert any("_crash_on_purpose" in ln for ln in panic)  # the faulting frame
    frames = frames_of(root)
    assert not any(f.type in (FrameType.RESULT, FrameType.EXIT) for f in frames)
    assert any(f.type is FrameType.LOG and "native" in f.payload["msg"] for f in frames)


def test_unexpected_exit_and_early_exception_are_reported(tmp_path):
    root = make_root(tmp_path)
    _, how = run_pid1(root, child=lambda fd: 3)
    assert how == "exit 3"
    assert "PANIC: init process (pid" in (root / "dev/ttyS1").read_text()

    def import_fails(fd):
        raise ImportError("no module named guest.lifecycle")

    (root / "dev/ttyS1").write_bytes(b"")
    _, how = run_pid1(root, child=import_fails)
    text = (root / "dev/ttyS1").read_text()
    assert how == "exit 1" and "PANIC: ImportError: no module named guest.lifecycle" in text


def test_host_dump_and_shutdown_requests(tmp_path):
    root = make_root(tmp_path, run_inputs(duration=60.0))

    def host():
        fd = os.open(root / "dev/hvc0", os.O_WRONLY)  # blocks until init opens hvc0
        try:
            time.sleep(0.3)
            os.write(fd, b"P")
            os.write(fd, b"D")
            time.sleep(0.3)
            os.write(fd, b"S")
        finally:
            os.close(fd)

    t = threading.Thread(target=host, daemon=True)
    t.start()
    t0 = time.monotonic()
    run_guest(root)
    t.join(5)
    assert time.monotonic() - t0 < 15
    frames = frames_of(root)
    dumps = {f.payload["source"]: f.payload["data"] for f in frames if f.type is FrameType.DUMP}
    assert dumps["/proc/schedstat"] == b"version 17\n"  # P: the /proc snapshot
    # D: SysRq-D; this fake root has no tracefs, so the dump is empty and a LOG says why.
    sysrq = [f.payload for f in frames if f.payload.get("source") == "sched_ext_dump"]
    assert sysrq == [{"source": "sched_ext_dump", "data": b"", "trigger": "sysrq", "part": 0}]
    logs = [f.payload["msg"] for f in frames if f.type is FrameType.LOG]
    assert any(m.startswith("SysRq-D: no sched_ext dump lines (no tracefs") for m in logs), logs
    result = next(f.payload for f in frames if f.type is FrameType.RESULT)
    assert result["passed"] is False and result["stopped"] is True
    assert "shutdown" in result["reason"]
    assert all(w["work_units"] > 0 for w in result["workers"])
    assert frames[-1].payload["code"] == ExitCode.SHUTDOWN


def test_ensure_std_fds_fills_closed_fds(tmp_path):
    # In a child: pytest's own fds 0-2 must not be touched.
    code = (
        "import os; from guest.init import ensure_std_fds; os.close(0); os.close(2);"
        "ensure_std_fds(); print(os.path.realpath('/proc/self/fd/0'),"
        " os.path.realpath('/proc/self/fd/2'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["/dev/null", "/dev/null"]


def test_guest_import_stays_lean():
    # Each of these costs 0.4-1.7 s of startup under TCG (measured with -X importtime).
    code = (
        "import sys; import guest.init; pid1 = set(sys.modules); import guest.lifecycle;"
        "print(sorted({'typing', 'pathlib', 'dataclasses', 'inspect', 're'} & set(sys.modules)),"
        " sorted(m for m in pid1 if m.startswith('guest')))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0, out.stderr
    # PID 1 itself imports nothing else of the guest before it forks the init process.
    assert out.stdout.strip() == "[] ['guest', 'guest.init']"
