"""Run a command inside the testbed: this machine's tree, in a QEMU TCG VM with a real /dev/kvm.

>>> r = run_in_testbed(["sh", "-c", "echo hi; exit 7"], timeout=300)
hi
>>> r.exit_code
7

QEMU never outlives the call: it is killed on timeout, on any exception (KeyboardInterrupt
and SIGTERM included), and, as a backstop, by PR_SET_PDEATHSIG when this process dies.
"""

from __future__ import annotations

import ctypes
import functools
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from orchestrator.testbed.job import JobSpec, default_shares, write_job
from orchestrator.testbed.l1init import ensure_initramfs
from orchestrator.testbed.l1kernel import ensure_l1_kernel, testbed_dir
from orchestrator.testbed.protocol import (
    JOB_TAG,
    PORT_STATUS,
    PORT_STDERR,
    PORT_STDOUT,
    ROOT_TAG,
    StatusLog,
)
from orchestrator.testbed.qemu_argv import (
    QEMU_BINARY,
    TCG_THREADS,
    QemuLaunch,
    SerialPort,
    VirtfsShare,
    qemu_argv,
)
from schedlab_shared import kernel_console

__all__ = ("QEMU_ENV", "TestbedError", "TestbedResult", "prune_stale_jobs", "run_in_testbed")

_PR_SET_PDEATHSIG = 1
#: Environment variable naming another QEMU binary (a custom build, or a test double).
QEMU_ENV = "SCHEDLAB_TESTBED_QEMU"
#: Environment variable choosing QEMU's TCG threading ("multi" or "single").
TCG_THREADS_ENV = "SCHEDLAB_TESTBED_TCG_THREADS"
DEFAULT_TCG_THREADS = "multi"
# One L1 vCPU by default: with two, multi-threaded TCG crashed L1's kernel ("Oops: int3"
# while it live-patched its own code on KVM VM start) in several of ~15 runs here; with one,
# in none. L2 guests still get all their vCPUs. --cpus 2 is faster when it holds.
DEFAULT_CPUS = 1
_CHUNK = 65536
#: Longest we read what is left in the port sockets once L1 reported or QEMU exited.
_DRAIN_S = 5.0
#: Kept console logs and QEMU stderr files (oldest removed first).
_KEEP_LOGS = 40


class TestbedError(RuntimeError):
    """The testbed itself failed (L1 did not boot, kvm_amd did not load, timeout, ...).

    :param console_log: L1's console log, kept for diagnosis (None if not written).
    :param timed_out: the failure was the caller's timeout.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, message: str, *, console_log: Path | None = None, timed_out: bool = False):
        super().__init__(message)
        self.console_log = console_log
        self.timed_out = timed_out


@dataclass(frozen=True)
class TestbedResult:
    """Outcome of one testbed run.

    :param exit_code: CMD's exit status (0..255; 128+N when killed by signal N).
    :param duration_s: wall time of the whole run, QEMU start to exit.
    :param l1_boot_s: wall time from QEMU start until CMD started inside L1.
    :param l1_uptime_s: L1's own uptime when CMD started.
    :param console_log: L1's console log if kept (``keep_log``), else None.
    :param attempts: L1 boots it took (see ``boot_attempts``).
    """

    __test__ = False

    exit_code: int
    duration_s: float
    l1_boot_s: float | None
    l1_uptime_s: float | None
    console_log: Path | None
    attempts: int = 1


def _set_pdeathsig() -> None:
    # Runs in the forked child before exec: QEMU gets SIGKILL when its parent thread dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Terminated(BaseException):
    """SIGTERM arrived while QEMU was running."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise _Terminated(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed QEMU always exits
        pass


def prune_stale_jobs(jobs_dir: Path) -> None:
    """Remove job directories left by testbed runs whose process is gone (e.g. SIGKILLed).

    Job directories are named ``<date>-<time>-<pid>-<random>``.
    """
    if not jobs_dir.is_dir():
        return
    for job in jobs_dir.iterdir():
        parts = job.name.split("-")
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(job, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def _prune_logs(log_dir: Path) -> None:
    logs = sorted(log_dir.iterdir(), key=lambda p: p.stat().st_mtime)
    for old in logs[:-_KEEP_LOGS]:
        old.unlink(missing_ok=True)


@dataclass
class _Pump:
    """Copies the three port sockets to their sinks until QEMU exits or the deadline passes."""

    sinks: dict[str, BinaryIO]
    status: StatusLog
    started: float
    ready_at: float | None = None
    broken: set[str] = field(default_factory=set)

    def run(
        self, socks: dict[str, socket.socket], proc: subprocess.Popen[bytes], deadline: float
    ) -> bool:
        """:return: True once L1 reported CMD's exit or QEMU exited by itself, False on timeout.

        L1 reports the exit only after CMD's output was consumed by QEMU (blocking virtio-console
        writes wait for the host) and after ``sync``: once the report is in, what remains is in
        our socket buffers, and the caller may kill QEMU without waiting for L1's poweroff.
        """
        sel = selectors.DefaultSelector()
        for name, s in socks.items():
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, name)
        try:
            while sel.get_map():
                now = time.monotonic()
                if now >= deadline:
                    return False
                for key, _ in sel.select(timeout=min(0.5, deadline - now)):
                    self._read(sel, key.fileobj, key.data)  # type: ignore[arg-type]
                if self.status.exit_code is not None or proc.poll() is not None:
                    self._drain(sel)
                    return True
            return proc.wait(timeout=max(0.0, deadline - time.monotonic())) is not None
        except subprocess.TimeoutExpired:
            return False
        finally:
            sel.close()

    def _read(self, sel: selectors.BaseSelector, sock: socket.socket, name: str) -> None:
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            sel.unregister(sock)
            return
        if name == PORT_STATUS:
            self.status.feed(data)
            if self.ready_at is None and self.status.ready_uptime_s is not None:
                self.ready_at = time.monotonic()
        else:
            if name in self.broken:
                return
            try:
                self.sinks[name].write(data)
                self.sinks[name].flush()
            except OSError:  # e.g. our stdout is a closed pipe: CMD goes on, output dropped
                self.broken.add(name)

    def _drain(self, sel: selectors.BaseSelector) -> None:
        # Bounded: a leftover background process in L1 could keep writing until QEMU dies.
        end = time.monotonic() + _DRAIN_S
        while time.monotonic() < end:
            ready = sel.select(timeout=0)
            if not ready:
                return
            for key, _ in ready:
                self._read(sel, key.fileobj, key.data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Shape:
    mem_mib: int
    cpus: int
    tcg_threads: str


def _launch(
    job_dir: Path, spec: JobSpec, console_log: Path, shape: _Shape, guest_fds: dict[str, int]
) -> QemuLaunch:
    kernel = ensure_l1_kernel(log=lambda m: print(m, file=sys.stderr))
    shares = (
        VirtfsShare(ROOT_TAG, Path("/"), readonly=True),
        VirtfsShare(JOB_TAG, job_dir, readonly=True),
        *(VirtfsShare(s.tag, s.path, readonly=False) for s in spec.shares),
    )
    return QemuLaunch(
        kernel=kernel.vmlinuz, initrd=ensure_initramfs(kernel), console_log=console_log,
        mem_mib=shape.mem_mib, cpus=shape.cpus, tcg_threads=shape.tcg_threads, shares=shares,
        ports=tuple(SerialPort(name, fd) for name, fd in guest_fds.items()),
    )  # fmt: skip


@dataclass(frozen=True)
class _Attempt:
    status: StatusLog
    exited: bool
    returncode: int | None
    duration_s: float
    ready_s: float | None


def _attempt(
    launch_for: Callable[[dict[str, int]], QemuLaunch],
    sinks: dict[str, BinaryIO],
    deadline: float,
    qemu_err: Path,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None,
) -> _Attempt:
    """Boot L1 once and pump its ports until it powers off, dies, or ``deadline`` passes."""
    with ExitStack() as stack:
        pairs = {name: socket.socketpair() for name in (PORT_STDOUT, PORT_STDERR, PORT_STATUS)}
        for a, b in pairs.values():
            stack.callback(a.close)
            stack.callback(b.close)
        launch = launch_for({name: b.fileno() for name, (_, b) in pairs.items()})
        started = time.monotonic()
        with open(qemu_err, "wb") as err_fh:
            proc = subprocess.Popen(
                qemu_argv(launch, os.environ.get(QEMU_ENV) or QEMU_BINARY), stdin=subprocess.DEVNULL, stdout=err_fh, stderr=err_fh,
                pass_fds=tuple(p.fd for p in launch.ports), preexec_fn=_set_pdeathsig,
                start_new_session=True,
            )  # fmt: skip
        stack.callback(_kill, proc)
        for _, b in pairs.values():
            b.close()  # QEMU holds the guest ends; closing ours lets us see EOF when it exits
        if on_start is not None:
            on_start(proc)
        pump = _Pump(sinks, StatusLog(), started)
        exited = pump.run({n: a for n, (a, _) in pairs.items()}, proc, deadline)
        duration = time.monotonic() - started
        _kill(proc)
        ready = None if pump.ready_at is None else pump.ready_at - started
        return _Attempt(pump.status, exited, proc.returncode, duration, ready)


def _failure(a: _Attempt, qemu_err: Path) -> str:
    if a.status.errors:
        return f"L1 failed: {a.status.errors[0]}"
    text = qemu_err.read_text(errors="replace").strip() if qemu_err.exists() else ""
    tail = f": {text.splitlines()[-1]}" if text else ""
    if a.status.ready_uptime_s is None:
        return f"L1 did not boot (qemu exited {a.returncode}{tail})"
    return f"L1 stopped without reporting CMD's exit status (qemu exited {a.returncode}{tail})"


def l1_oops(console_log: Path) -> str | None:
    """The first line of L1's console that says its kernel oopsed, if any."""
    try:
        data = console_log.read_bytes()
    except OSError:
        return None
    for line in data.splitlines():
        if kernel_console.is_oops(line):
            return line.decode(errors="replace").strip()[:200]
    return None


def run_in_testbed(
    cmd: list[str],
    *,
    timeout: float,
    mem_mib: int = 4096,
    cpus: int = DEFAULT_CPUS,
    share: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    keep_log: bool = False,
    boot_attempts: int = 3,
    tcg_threads: str | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> TestbedResult:
    """Run ``cmd`` inside the testbed and stream its output live.

    An L1 that dies silently before CMD starts is booted again (up to ``boot_attempts``):
    multi-threaded TCG occasionally crashes a booting kernel while it patches its own code.

    :param cmd: command and arguments, run in the host's cwd inside L1's chroot of ``/``.
    :param timeout: seconds for the whole run (L1 boot and retries included).
    :param mem_mib: L1 memory.
    :param cpus: L1 vCPUs.
    :param share: writable project tree (default: the cwd's git top-level).
    :param env: extra environment for ``cmd`` on top of the selected host variables.
    :param stdout: sink for CMD's stdout (default: our stdout).
    :param stderr: sink for CMD's stderr (default: our stderr).
    :param keep_log: keep L1's console log even on success.
    :param boot_attempts: boots to try before giving up on a crashing L1.
    :param tcg_threads: QEMU's TCG threading, ``"multi"`` or ``"single"`` (default: env
        ``SCHEDLAB_TESTBED_TCG_THREADS``, else :data:`DEFAULT_TCG_THREADS`).
    :param on_start: called with each QEMU process right after it starts (tests, progress).
    :return: CMD's exit code and timings.
    :raises TestbedError: the testbed failed; CMD's status is unknown.
    :raises orchestrator.testbed.job.JobError: ``cmd``, cwd or ``share`` cannot run in the testbed.
    """
    spec = JobSpec.for_command(cmd, shares=default_shares(share), env=env)
    threads = tcg_threads or os.environ.get(TCG_THREADS_ENV) or DEFAULT_TCG_THREADS
    shape = _Shape(mem_mib, cpus, threads)
    if threads not in TCG_THREADS:
        raise ValueError(f"tcg_threads {threads!r} not one of {TCG_THREADS}")
    sinks = {PORT_STDOUT: stdout or sys.stdout.buffer, PORT_STDERR: stderr or sys.stderr.buffer}
    base = testbed_dir()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    prune_stale_jobs(base / "jobs")
    (base / "logs").mkdir(parents=True, exist_ok=True)
    job_dir = base / "jobs" / run_id
    qemu_err = base / "logs" / f"{run_id}.qemu.err"
    keep: list[Path] = []
    deadline = time.monotonic() + timeout
    with ExitStack() as stack:
        stack.callback(lambda: _cleanup_files(job_dir, base / "logs", run_id, keep))
        stack.enter_context(_sigterm_raises())
        write_job(spec, job_dir)
        for n in range(1, max(1, boot_attempts) + 1):
            console_log = base / "logs" / f"{run_id}-{n}.log"
            a = _attempt(
                functools.partial(_launch, job_dir, spec, console_log, shape),
                sinks, deadline, qemu_err, on_start,
            )  # fmt: skip
            if a.status.exit_code is not None:
                oops = l1_oops(console_log)
                if oops:  # CMD may have been hit: its exit code proves nothing either way
                    keep += [console_log, qemu_err]
                    raise TestbedError(
                        f"the L1 kernel oopsed while CMD ran ({oops}); CMD exited "
                        f"{a.status.exit_code}, which is not trustworthy",
                        console_log=console_log,
                    )
                keep += [console_log] if keep_log else []
                return TestbedResult(
                    exit_code=a.status.exit_code, duration_s=a.duration_s, l1_boot_s=a.ready_s,
                    l1_uptime_s=a.status.ready_uptime_s,
                    console_log=console_log if keep_log else None, attempts=n,
                )  # fmt: skip
            keep += [console_log, qemu_err]
            if not a.exited:
                phase = "CMD running" if a.status.ready_uptime_s is not None else "L1 still booting"
                raise TestbedError(
                    f"timed out after {timeout:g} s ({phase})",
                    console_log=console_log,
                    timed_out=True,
                )
            if a.status.ready_uptime_s is not None or a.status.errors or n == boot_attempts:
                raise TestbedError(_failure(a, qemu_err), console_log=console_log)
            print(f"schedlab testbed: L1 crashed while booting (console log: {console_log}); "
                  f"retrying ({n + 1}/{boot_attempts})", file=sys.stderr)  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover


def _cleanup_files(job_dir: Path, log_dir: Path, run_id: str, keep: list[Path]) -> None:
    for name in ("cmd.sh", "mounts"):
        (job_dir / name).unlink(missing_ok=True)
    try:
        job_dir.rmdir()
    except OSError:
        pass
    for path in log_dir.glob(f"{run_id}*"):
        if path not in keep:
            path.unlink(missing_ok=True)
    _prune_logs(log_dir)
