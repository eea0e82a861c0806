"""The QEMU engine: qemu-system-x86_64 (TCG, or KVM where hardware-backed) as the VM.

vmm_proc listens on one unix socket per stream before QEMU starts, so QEMU connects to each
at startup and not one early boot byte is lost. QEMU dies with us (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time

from schedlab_shared import kernel_console
from schedlab_shared.bus.vmm import ExitReason
from schedlab_shared.parentdeath import die_with_parent
from schedlab_shared.vm_config import RUNTIME_DIR_ENV, VmConfig

from .base import EngineError, EngineHooks
from .qemu_argv import QemuSockets, qemu_argv, ram_regions
from .qemu_qmp import QmpError, vcpu_thread_ids

__all__ = ("QemuEngine",)

log = logging.getLogger(__name__)
_CONNECT_TIMEOUT_S = 10.0
_TAIL_BYTES = 32 << 10


def _die_with_parent() -> None:
    die_with_parent(signal.SIGKILL)


class QemuEngine:
    name = "qemu"

    def __init__(self, config: VmConfig, hooks: EngineHooks, qemu: str = "qemu-system-x86_64"):
        self.config = config
        self.hooks = hooks
        self.qemu = qemu
        self._proc: subprocess.Popen[bytes] | None = None
        self._rundir = ""
        self._conns: dict[str, socket.socket] = {}
        self._stop_reason: ExitReason | None = None
        self._lock = threading.Lock()
        self._bulk_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._console_tail = bytearray()  # the last _TAIL_BYTES of COM1: where panics show
        self._stderr = b""
        self._regions = ram_regions(config)
        self._qmp_path = ""
        self._vcpu_tids: list[int] | None = None  # asked once through QMP

    def memory_layout(self) -> list[dict]:
        return [dict(r) for r in self._regions]

    def start(self) -> None:
        if shutil.which(self.qemu) is None:
            raise EngineError(f"{self.qemu} not found: install the qemu-system-x86 package")
        # Inside the run's runtime dir when supervised: the orchestrator removes it even if
        # this process is SIGKILLed before its own cleanup.
        self._rundir = tempfile.mkdtemp(
            prefix="schedlab-qemu-", dir=os.environ.get(RUNTIME_DIR_ENV)
        )
        names = ("com1", "com2", "hvc0", "bulk", "shell")
        listeners = {n: self._listen(os.path.join(self._rundir, f"{n}.sock")) for n in names}
        sockets = QemuSockets(
            **{n: listeners[n].getsockname() for n in names},
            qmp=os.path.join(self._rundir, "qmp.sock"),
        )
        self._qmp_path = sockets.qmp
        argv = qemu_argv(self.config, sockets, self.qemu)
        log.info("starting %s", " ".join(argv))
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,
                start_new_session=True,
            )
            self._accept_all(listeners)
        except BaseException:
            self.close()
            raise
        finally:
            for s in listeners.values():
                s.close()
        self._spawn(self._read_loop, "qemu-streams")
        self._spawn(self._wait_loop, "qemu-wait")
        if self.config.timeout_s > 0:
            self._spawn(self._watchdog, "qemu-watchdog")

    def _listen(self, path: str) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.bind(path)
        s.listen(1)
        return s

    def _accept_all(self, listeners: dict[str, socket.socket]) -> None:
        # QEMU opens its chardevs in command-line order; accept whichever comes.
        stream_of = {
            "com1": "console", "com2": "diag", "hvc0": "hvc0", "bulk": "bulk", "shell": "shell",
        }  # fmt: skip
        sel = selectors.DefaultSelector()
        for name, s in listeners.items():
            sel.register(s, selectors.EVENT_READ, name)
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        try:
            while len(self._conns) < len(listeners):
                assert self._proc is not None
                if self._proc.poll() is not None:
                    err = (
                        self._proc.stderr.read().decode(errors="replace").strip()
                        if self._proc.stderr
                        else ""
                    )
                    raise EngineError(
                        f"QEMU exited at startup ({self._proc.returncode}): {err[-400:]}"
                    )
                if time.monotonic() > deadline:
                    raise EngineError("QEMU did not connect its serial/virtio sockets in time")
                for key, _ in sel.select(timeout=0.1):
                    conn, _addr = key.fileobj.accept()  # type: ignore[union-attr]
                    self._conns[stream_of[key.data]] = conn
                    sel.unregister(key.fileobj)
        finally:
            sel.close()

    def _spawn(self, target, name: str) -> None:  # noqa: ANN001
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _read_loop(self) -> None:
        sel = selectors.DefaultSelector()
        for name, conn in self._conns.items():
            sel.register(conn, selectors.EVENT_READ, name)
        open_streams = len(self._conns)
        while open_streams:
            for key, _ in sel.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "console":
                    self._console_tail += data
                    del self._console_tail[:-_TAIL_BYTES]
                self.hooks.stream(key.data, data)
        sel.close()

    def _wait_loop(self) -> None:
        assert self._proc is not None
        _, err = self._proc.communicate()
        self._stderr = err or b""
        for t in self._threads:
            if t.name == "qemu-streams":
                t.join(timeout=5.0)  # deliver every byte before announcing the exit
        self.hooks.exited(*self._exit_reason(self._proc.returncode))

    def _exit_reason(self, rc: int) -> tuple[ExitReason, str]:
        if self._stop_reason is not None:
            return self._stop_reason, f"stopped by the VMM (QEMU status {rc})"
        # Only the kernel's own panic on COM1 is a crash; our init's PANIC lines on COM2 are
        # evidence the orchestrator judges (the VM itself then exits cleanly).
        line = kernel_console.panic_line(bytes(self._console_tail).splitlines())
        if line is not None:
            return ExitReason.CRASH, line.decode(errors="replace").strip()
        if rc == 0:
            return ExitReason.GUEST_EXIT, "the guest rebooted (QEMU -no-reboot)"
        err = self._stderr.decode(errors="replace").strip().splitlines()
        return ExitReason.ERROR, f"QEMU exited with status {rc}: {err[-1] if err else ''}"

    def _watchdog(self) -> None:
        assert self._proc is not None
        try:
            self._proc.wait(timeout=self.config.timeout_s)
        except subprocess.TimeoutExpired:
            self.hooks.stream(
                "diag",
                b"\nschedlab: VM timed out after %.0f s; stopping it\n" % self.config.timeout_s,
            )
            self.stop(ExitReason.TIMEOUT)

    def vcpu_threads(self) -> tuple[list[tuple[int, int]], int]:
        """QEMU's vCPU threads (QMP ``query-cpus-fast``, asked once); single-threaded TCG
        runs every vCPU on one thread, which the second value says."""
        proc = self._proc
        if proc is None or proc.poll() is not None or not self._qmp_path:
            return [], 1
        if self._vcpu_tids is None:
            try:
                self._vcpu_tids = vcpu_thread_ids(self._qmp_path, self.config.topology.nr_cpus)
            except QmpError as exc:
                log.warning("vCPU threads unknown: %s", exc)
                self._vcpu_tids = []
        tids = self._vcpu_tids
        shared = max((tids.count(t) for t in set(tids)), default=1)
        return [(proc.pid, t) for t in tids], shared

    def send_console(self, data: bytes) -> None:
        conn = self._conns.get("hvc0")
        if conn is None:
            raise EngineError("the console port is not connected")
        conn.sendall(data)

    def send_bulk(self, data: bytes, timeout_s: float) -> int:
        """Into the bulk chardev's socket. QEMU reads it only while the guest has the port
        open and receive buffers posted (virtio-serial's can_read), so the socket's send
        buffer is the bound and its fullness the backpressure."""
        return self._send_port("bulk", data, timeout_s)

    def send_shell(self, data: bytes, timeout_s: float) -> int:
        """Into the shell chardev's socket, as :meth:`send_bulk`."""
        return self._send_port("shell", data, timeout_s)

    def _send_port(self, name: str, data: bytes, timeout_s: float) -> int:
        conn = self._conns.get(name)
        if conn is None:
            raise EngineError(f"the {name} port is not connected")
        view = memoryview(data)
        sent = 0
        deadline = time.monotonic() + timeout_s
        room = select.poll()
        room.register(conn, select.POLLOUT)
        with self._bulk_lock:  # one writer at a time keeps requests' bytes in order
            while sent < len(view):
                try:
                    sent += conn.send(view[sent:], socket.MSG_DONTWAIT)
                    continue
                except BlockingIOError:
                    pass
                except OSError as exc:
                    raise EngineError(f"{name} port write failed: {exc.strerror or exc}") from None
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                room.poll(left * 1000 + 1)
        return sent

    def bulk_pending(self) -> int:
        conn = self._conns.get("bulk")
        if conn is None:
            return 0
        try:  # SIOCOUTQ: what QEMU has not read yet (with the kernel's per-skb overhead)
            buf = fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(buf, "little")

    def stop(self, reason: ExitReason) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.stop(self._stop_reason or ExitReason.STOPPED)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5.0)
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        for r in self._regions:
            try:
                os.unlink(r["path"])
            except FileNotFoundError:
                pass
        if self._rundir:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = ""
