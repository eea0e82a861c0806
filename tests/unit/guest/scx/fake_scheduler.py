"""A stand-in for a sched_ext scheduler binary: ``fake_scheduler.py ROOT MODE [NAME]``.

It also plays the kernel's part on the fake tree under ROOT: ``sys/kernel/sched_ext/state``
and ``root/ops`` (replaced atomically, as sysfs never shows a half-written file), records
appended to ``dev/kmsg`` and dump lines appended to ``sys/kernel/tracing/trace_pipe``.

Modes: ``normal`` (attach, run until SIGINT, detach), ``die`` (a verifier rejection on
stderr, exit 1), ``die_kernel`` (the kernel refuses ops.init), ``never`` (never attaches),
``ignore_int`` (attaches, ignores SIGINT), ``error`` / ``stall`` (attach, then the kernel
disables it with scx_bpf_error / a watchdog stall; DEBUG DUMP and EXIT follow on stderr
like UEI_REPORT a moment later), ``crash`` (attach, then SIGSEGV), ``flood`` (attach, then
write a lot to stdout, then like normal).
"""

import os
import signal
import sys
import time

ROOT, MODE = sys.argv[1], sys.argv[2]
NAME = sys.argv[3] if len(sys.argv) > 3 else "fake"
SCX = os.path.join(ROOT, "sys/kernel/sched_ext")
RULE = "=" * 80
PARENT = os.getppid()
stop = False


def nap(seconds):
    """Sleep, but leave if the test process is gone: a failed test leaves nothing running."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.getppid() != PARENT:
            os._exit(3)
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def put(rel, text):
    path = os.path.join(SCX, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def kmsg(text, prio=6):
    with open(os.path.join(ROOT, "dev/kmsg"), "a") as f:
        f.write(f"{prio},1,{time.monotonic_ns() // 1000},-;{text}\n")


def trace(line):
    with open(os.path.join(ROOT, "sys/kernel/tracing/trace_pipe"), "a") as f:
        f.write(f"          <idle>-0       [001] d.h2.    42.1: sched_ext_dump: {line}\n")


def attach():
    put("state", "enabling\n")
    put("root/ops", NAME + "\n")
    put("state", "enabled\n")
    kmsg(f'sched_ext: BPF scheduler "{NAME}" enabled')
    print(f"{NAME}: attached", flush=True)


def detach(reason="unregistered from user space", msg="", dump=()):
    for line in dump:
        trace(line)
    put("state", "disabling\n")
    kmsg(f'sched_ext: BPF scheduler "{NAME}" disabled ({reason})', 3 if msg else 6)
    if msg:
        kmsg(f"sched_ext: {NAME}: {msg}", 3)
        kmsg("   scx_bpf_error_bstr+0x6d/0x90", 4)
    if os.path.exists(os.path.join(SCX, "root/ops")):
        os.remove(os.path.join(SCX, "root/ops"))
    put("state", "disabled\n")


def on_int(*_):
    global stop
    stop = True


def run_until_sigint():
    while not stop:
        nap(0.01)
    detach()
    print("EXIT: unregistered from user space", file=sys.stderr, flush=True)
    sys.exit(0)


def kernel_error(reason, msg):
    dump = [f"{NAME}: root", "kworker/1:2[57] triggered exit kind 1025:", f"  {reason} ({msg})", ""]
    detach(reason, msg, dump)
    nap(0.3)  # the C examples look at UEI_EXITED once a second
    sys.stderr.write(f"\nDEBUG DUMP\n{RULE}\n\n" + "\n".join(dump) + f"\n\n{RULE}\n\n")
    sys.stderr.write(f"EXIT: {reason} ({msg})\n")
    sys.stderr.flush()
    sys.exit(0)


def verifier_rejection():
    err = sys.stderr
    err.write("libbpf: prog 'fake_dispatch': BPF program load failed: Permission denied\n")
    err.write("libbpf: prog 'fake_dispatch': -- BEGIN PROG LOAD LOG --\n")
    for i in range(40):
        err.write("; for (i = 0; i < 40; i++) { @ fake.bpf.c:30\n")
        err.write(f"12: (07) r7 += 1                      ; R7_w=scalar(smin=1,smax={i + 1})\n")
        err.write(f"13: (ad) if r7 < r8 goto pc-2 14: R7_w={i + 1} R8=40\n")
    err.write("R2 invalid mem access 'scalar'\n-- END PROG LOAD LOG --\n")
    err.write("libbpf: failed to load BPF skeleton 'fake': -13\nFailed to load skel\n")
    err.flush()
    sys.exit(1)


signal.signal(signal.SIGINT, on_int)  # before attaching, as the C examples do
if MODE == "normal":
    attach()
    run_until_sigint()
elif MODE == "die":
    verifier_rejection()
elif MODE == "die_kernel":
    put("state", "enabling\n")
    detach("runtime error", "ops.init() failed (-22)")
    print("EXIT: runtime error (ops.init() failed (-22))", file=sys.stderr, flush=True)
    sys.exit(1)
elif MODE == "never":
    print("loading BPF programs...", flush=True)
    nap(600)
elif MODE == "ignore_int":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    attach()
    nap(600)
elif MODE == "error":
    attach()
    nap(0.3)
    kernel_error("scx_bpf_error", "test triggering error")
elif MODE == "stall":
    attach()
    nap(0.3)
    kernel_error("runnable task stall", "python3[187] failed to run for 5.136s")
elif MODE == "crash":
    attach()
    nap(0.3)
    print("about to crash", file=sys.stderr, flush=True)
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGSEGV)
elif MODE == "flood":
    attach()
    line = b"x" * 1023 + b"\n"
    for _ in range(4096):  # 4 MiB
        os.write(1, line)
    print("flood done", file=sys.stderr, flush=True)
    run_until_sigint()
else:
    sys.exit(f"unknown mode {MODE}")
