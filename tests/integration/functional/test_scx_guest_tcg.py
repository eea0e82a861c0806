"""Tier 3: guest/scx on the real default kernel (7.2, sched_ext built in) as PID 1 under TCG.

No BPF scheduler is needed for what is checked here: the kernel facts guest/scx relies on
(sysfs ``state`` reads ``disabled``, the ``sched_ext_dump`` tracepoint exists under tracefs,
SysRq-D with nothing loaded dumps nothing, ``/dev/kmsg`` opened at its end), and the process
side as PID 1 (posix_spawn, pidfd, waitid): a "scheduler" that never attaches is timed out
and killed, one that fails at once is reported with its output first.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.initramfs.builder import build_initramfs
from orchestrator.kernel.artifacts import KernelError
from orchestrator.kernel.resolve import resolve_kernel
from tests.framework.prereq import require

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]

PROBE_INIT = r"""
import json
import os


def probe():
    from guest import boot
    from guest.scx.exit_parse import KmsgExitParser
    from guest.scx.run import SchedulerRun
    from guest.scx.sysfs import ScxSysfs
    from guest.scx.trace import TraceDump
    from guest.scx.watch import KmsgTail
    from guest.syscalls import LinuxSystem

    out = {"mounts": boot.mount_all(LinuxSystem(), "/")}
    sysfs = ScxSysfs("/")
    out["absent"] = sysfs.absent_reason()
    out["state"] = sysfs.state()
    trace = TraceDump("/")
    out["trace_ok"] = trace.enable()
    out["trace_error"] = trace.error
    out["sysrq_bytes"] = len(trace.sysrq_dump(deadline_s=1.0, quiet_s=0.2))
    out["sysrq_error"] = trace.error
    trace.close()
    parser = KmsgExitParser()
    tail = KmsgTail("/dev/kmsg", parser)
    with open("/dev/kmsg", "w") as f:
        f.write('<3>sched_ext: BPF scheduler "probe" disabled (scx_bpf_error)\n')
    with open("/dev/kmsg", "w") as f:
        f.write("<3>sched_ext: probe: written by the schedlab probe\n")
    tail.poll()
    found = parser.result()
    out["kmsg"] = None if found is None else found.as_map()
    frames = []

    def send(ftype, payload):
        frames.append(ftype.name)
        return True

    never = SchedulerRun("/usr/bin/python3", ["-S", "-c", "import time; print('loading', flush=True); time.sleep(60)"],
                         send, "/", name="never", attach_timeout_s=10.0)
    out["never"] = never.start().as_map()
    out["never_stop"] = never.stop().status
    dies = SchedulerRun("/usr/bin/python3", ["-S", "-c", "import sys; sys.stderr.write('libbpf: failed to load\\n'); sys.exit(1)"],
                        send, "/", name="dies")
    out["dies"] = dies.start().as_map()
    out["frames"] = frames
    out["children_left"] = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"
                            and open(f"/proc/{p}/stat").read().split()[3] == "1"]
    return out


def main():
    try:
        result = probe()
    except BaseException as e:
        import traceback
        result = {"crash": "".join(traceback.format_exception(e))}
    print("SCX-PROBE " + json.dumps(result), flush=True)
    os.sync()
    import ctypes
    ctypes.CDLL(None).reboot(0x4321FEDC)
"""


def test_guest_scx_on_the_real_kernel(tmp_path):
    qemu = shutil.which("qemu-system-x86_64")
    require(qemu is not None, "qemu-system-x86_64 not installed")
    try:
        kernel = resolve_kernel(None, fetch_if_missing=False)
    except KernelError as e:
        require(False, f"no kernel: {e} (run `schedlab kernel fetch`)")
    guest = tmp_path / "guest"
    shutil.copytree(REPO / "guest", guest, ignore=shutil.ignore_patterns("__pycache__"))
    (guest / "init.py").write_text(PROBE_INIT)
    image = build_initramfs(kernel, guest_src=guest)
    log = tmp_path / "serial.log"
    cmd = [qemu, "-accel", "tcg,thread=single", "-cpu", "max", "-M", "pc", "-m", "512",
           "-smp", "2", "-nographic", "-no-reboot", "-kernel", str(kernel.vmlinuz),
           "-initrd", str(image), "-append", "console=ttyS0 panic=-1 quiet nokaslr"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_bytes().decode("utf-8", "replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("SCX-PROBE ")), None)
    assert line is not None, text[-3000:]
    r = json.loads(line[len("SCX-PROBE ") :])
    assert "crash" not in r, r.get("crash")
    assert not [m for m in r["mounts"] if m.startswith("required")], r["mounts"]
    assert (r["absent"], r["state"]) == ("", "disabled")
    assert r["trace_ok"], r["trace_error"]
    assert (r["sysrq_bytes"], r["sysrq_error"]) == (0, "")
    assert (
        r["kmsg"]["kind"] == "ERROR_BPF" and r["kmsg"]["message"] == "written by the schedlab probe"
    )
    never = r["never"]
    assert never["status"] == "timed_out" and never["exit_status"] == "killed by SIGKILL"
    assert "loading" in never["message"] and r["never_stop"] == "not_started"
    dies = r["dies"]
    assert dies["status"] == "died" and dies["exit_status"] == "exited 1"
    assert dies["message"].startswith("libbpf: failed to load\n-- dies exited before attaching")
    assert "SCHED_ATTACH" in r["frames"] and "SCHED_LOG" in r["frames"]
    assert r["children_left"] == []
