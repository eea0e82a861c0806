"""PID-1 orchestration against a fake root directory and a fake System (no mount, no reboot)."""

import errno
import os
import shutil
import subprocess
import sys
import threading
import time

from guest import init as init_mod
from guest.init import Init
from guest.wire import ExitCode, FrameDecoder, FrameType

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


def make_root(tmp_path, cmdline, sentinel="img-1"):
    r = tmp_path / "root"
    for d in ("proc", "dev", "sys/fs/cgroup", "sys/class/virtio-ports/vport0p1", "etc"):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / "proc/cmdline").write_text(cmdline + "\n")
    (r / "proc/schedstat").write_text("version 17\n")
    (r / "etc/schedlab-image-id").write_text("img-1\n")
    if sentinel is not None:
        (r / "schedlab.sentinel").write_text(sentinel + "\n")
    (r / "sys/class/virtio-ports/vport0p1/name").write_text("org.schedlab.bulk\n")
    (r / "dev/vport0p1").write_bytes(b"")
    (r / "dev/ttyS1").write_bytes(b"")
    os.mkfifo(r / "dev/hvc0")
    return r


def frames_of(root):
    d = FrameDecoder()
    frames = d.feed((root / "dev/vport0p1").read_bytes()) + d.finish()
    assert d.stats.garbage_bytes == 0 and d.stats.truncated_bytes == 0
    return frames


def run_init(root, system=None):
    system = system or FakeSystem()
    init = Init(system, root=root, pid1=False, bulk_timeout_s=0.2, cgroup_rmdir=shutil.rmtree)
    init.run()
    return system, init


SPEC = "console=ttyS0 schedlab.scenario=cgroup-spinners schedlab.duration=0.2 schedlab.fairness=1"


def test_happy_path_frame_sequence_and_reboot(tmp_path):
    root = make_root(tmp_path, SPEC)
    system, _ = run_init(root)
    frames = frames_of(root)
    seq = [(f.type, f.payload.get("name")) for f in frames]
    assert seq == [
        (FrameType.SYS_RDY, None),
        (FrameType.PHASE, "setup"),
        (FrameType.PHASE, "workload"),
        (FrameType.PHASE, "verdict"),
        (FrameType.RESULT, None),
        (FrameType.PHASE, "shutdown"),
        (FrameType.EXIT, None),
    ]
    rdy = frames[0].payload
    assert (rdy["kernel"], rdy["cpus"], rdy["modules"]) == (RELEASE, 2, [])
    assert 0 < rdy["main_ns"] <= rdy["boot_ns"]
    result = frames[4].payload
    assert result["passed"] is True, result["reason"]
    assert result["scenario"] == "cgroup-spinners" and len(result["workers"]) == 4
    assert {c["name"] for c in result["verdicts"]} == {"complete", "starvation", "fairness"}
    assert frames[-1].payload == {"code": ExitCode.OK}
    shutdown = frames[-2].payload
    assert shutdown["control"]["error"] == "" and shutdown["bulk_dropped"] == 0
    assert system.calls[-2:] == [("sync",), ("reboot",)]
    mounted = [c[1] for c in system.calls if c[0] == "mount"]
    assert mounted[:4] == ["proc", "sysfs", "devtmpfs", "cgroup2"]
    assert not (root / "sys/fs/cgroup/schedlab").exists()


def test_truncated_image_is_reported_and_powered_off(tmp_path):
    root = make_root(tmp_path, SPEC, sentinel=None)
    system, _ = run_init(root)
    frames = frames_of(root)
    assert [f.type for f in frames] == [
        FrameType.LOG,
        FrameType.RESULT,
        FrameType.PHASE,
        FrameType.EXIT,
    ]
    assert "schedlab.sentinel" in frames[0].payload["msg"]
    assert frames[1].payload["passed"] is False
    assert frames[-1].payload["code"] == ExitCode.BAD_IMAGE
    assert "BAD_IMAGE" in (root / "dev/ttyS1").read_text()
    assert system.calls[-1] == ("reboot",)
    assert not any(c[0] == "finit_module" for c in system.calls)


def test_mismatched_sentinel_is_bad_image(tmp_path):
    root = make_root(tmp_path, SPEC, sentinel="img-0")
    run_init(root)
    assert frames_of(root)[-1].payload["code"] == ExitCode.BAD_IMAGE


def test_bad_spec_gives_error_frame_and_exit_code(tmp_path):
    root = make_root(tmp_path, SPEC + " schedlab.workers=lots")
    run_init(root)
    frames = frames_of(root)
    logs = [f.payload for f in frames if f.type is FrameType.LOG]
    assert any(p["level"] == "error" and "schedlab.workers" in p["msg"] for p in logs)
    result = next(f.payload for f in frames if f.type is FrameType.RESULT)
    assert result["passed"] is False and "schedlab.workers" in result["reason"]
    assert frames[-1].payload["code"] == ExitCode.BAD_SPEC


def test_modules_loaded_in_order_and_reported(tmp_path):
    root = make_root(tmp_path, SPEC)
    moddir = root / "lib/modules" / RELEASE
    (moddir / "kernel").mkdir(parents=True)
    for name in ("kernel/virtio_mmio.ko", "irq-bypass.ko", "kvm.ko"):
        (moddir / name).write_bytes(b"\x7fELF")
    (moddir / "schedlab-load-order").write_text(
        "# load order\nkernel/virtio_mmio.ko\n\nirq-bypass.ko\nkvm.ko\nmissing.ko\n"
    )
    (root / "sys/module/kvm").mkdir(parents=True)  # built in
    system, _ = run_init(root)
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
    root = make_root(tmp_path, SPEC)
    system = FakeSystem(
        mount_errno={"cgroup2": errno.ENODEV, "tracefs": errno.ENODEV, "devtmpfs": errno.EBUSY}
    )
    run_init(root, system)
    frames = frames_of(root)
    levels = [(f.payload["level"], f.payload["msg"]) for f in frames if f.type is FrameType.LOG]
    assert [lv for lv, _ in levels] == ["error", "warning"]  # EBUSY devtmpfs is fine
    assert frames[-1].payload["code"] == ExitCode.SETUP_FAILED


def test_no_bulk_port_still_reboots(tmp_path):
    root = make_root(tmp_path, SPEC)
    (root / "sys/class/virtio-ports/vport0p1/name").write_text("org.other\n")
    system, _ = run_init(root)
    assert "not found" in (root / "dev/ttyS1").read_text()
    assert system.calls[-1] == ("reboot",)


def test_crash_goes_to_com2_only_and_still_reboots(tmp_path, monkeypatch):
    def boom(_text):
        raise RuntimeError("spec parser exploded")

    monkeypatch.setattr(init_mod, "parse_cmdline", boom)
    root = make_root(tmp_path, SPEC)
    system, _ = run_init(root)
    types = [f.type for f in frames_of(root)]
    assert types == [FrameType.SYS_RDY, FrameType.PHASE]  # nothing after the crash
    com2 = (root / "dev/ttyS1").read_text()
    assert "PANIC: init crashed: Traceback" in com2
    assert "PANIC: RuntimeError: spec parser exploded" in com2
    assert system.calls[-2:] == [("sync",), ("reboot",)]


def test_host_dump_and_shutdown_requests(tmp_path):
    root = make_root(tmp_path, SPEC.replace("duration=0.2", "duration=60"))

    def host():
        fd = os.open(root / "dev/hvc0", os.O_WRONLY)  # blocks until init opens hvc0
        try:
            time.sleep(0.3)
            os.write(fd, b"D")
            time.sleep(0.3)
            os.write(fd, b"S")
        finally:
            os.close(fd)

    t = threading.Thread(target=host, daemon=True)
    t.start()
    t0 = time.monotonic()
    run_init(root)
    t.join(5)
    assert time.monotonic() - t0 < 15
    frames = frames_of(root)
    dumps = {f.payload["source"]: f.payload["data"] for f in frames if f.type is FrameType.DUMP}
    assert dumps["/proc/schedstat"] == b"version 17\n"
    result = next(f.payload for f in frames if f.type is FrameType.RESULT)
    assert result["passed"] is False and result["stopped"] is True
    assert "shutdown" in result["reason"]
    assert all(w["work_units"] > 0 for w in result["workers"])
    assert frames[-1].payload["code"] == ExitCode.SHUTDOWN


def test_ensure_std_fds_fills_closed_fds(tmp_path):
    # In a child: pytest's own fds 0-2 must not be touched.
    code = (
        "import os; from guest.init import _ensure_std_fds; os.close(0); os.close(2);"
        "_ensure_std_fds(); print(os.path.realpath('/proc/self/fd/0'),"
        " os.path.realpath('/proc/self/fd/2'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["/dev/null", "/dev/null"]


def test_guest_import_stays_lean():
    # Each of these costs 0.4-1.7 s of startup under TCG (measured with -X importtime).
    code = (
        "import sys; import guest.init;"
        "print(sorted({'typing', 'pathlib', 'dataclasses', 'inspect', 're'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
