"""The guest's PID 1: fork the init process, reap, report how it died, power off.

``/init`` runs ``from guest.init import main; main()``. PID 1 itself stays small and
single-threaded: a signal that kills PID 1 panics the kernel with no useful text, so the run
(:class:`guest.lifecycle.GuestRun`) happens in a child. PID 1 reaps every process that
reparents to it; when the init process ends abnormally (a native fault, an unexpected exit
status) it writes ``PANIC:`` lines on COM2 and COM1 with the faulthandler text the child left
in the crash pipe. Then it syncs and calls reboot(2) (QEMU runs with ``-no-reboot``, so a
restart is a clean exit).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable

    from guest.syscalls import System

__all__ = ("ensure_std_fds", "main", "supervise")

_CRASH_CAP = 64 * 1024  # faulthandler text kept (its own depth limit keeps it far smaller)
_PIPE_SIZE = 1 << 20  # so a crashing child never blocks on the crash pipe


def supervise(
    child: Callable[[int], int], system: System, root: str = "/", reap_all: bool = True
) -> str:
    """Run ``child(crash_fd)`` in a forked process, report an abnormal end, power off.

    :param child: the init process's body; returns its exit status (0, or
        :data:`guest.crash.CRASHED` once it reported its own crash).
    :param system: reboot and sync (a fake in tests).
    :param root: where ``dev/ttyS1`` and ``dev/ttyS0`` are.
    :param reap_all: reap every child (PID 1 inherits orphans); tests wait for ``child`` only.
    :return: how the child ended (``exit 0``, ``killed by SIGSEGV``, ...), after reboot(2)
        returned (it only does when faked, or on failure).
    """
    crash_r, crash_w = os.pipe()
    _grow_pipe(crash_w)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(crash_r)
            code = child(crash_w)
        except BaseException:  # noqa: B036 - reported by PID 1 from the crash pipe
            import traceback

            os.write(crash_w, traceback.format_exc()[-_CRASH_CAP:].encode(errors="replace"))
        finally:
            os._exit(code)
    os.close(crash_w)
    status = _wait_for(pid, reap_all)
    from guest.crash import CRASHED, describe_status

    how = describe_status(status)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, CRASHED)):
        from guest.crash import panic

        text = _read_available(crash_r).decode(errors="replace")
        panic(root, f"init process (pid {pid}) {how}" + (f"\n{text}" if text else ""))
    os.close(crash_r)
    _power_off(system, root)
    return how


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (ImportError, OSError, AttributeError):
        pass  # the default 64 KiB still holds any faulthandler dump


def _wait_for(pid: int, reap_all: bool) -> int:
    """Block until ``pid`` exits, reaping orphans meanwhile; return its wait status.

    SIGCHLD keeps its default disposition: SIG_IGN would auto-reap and make every waitpid()
    fail with ECHILD, so the init process could not wait for the worker parent.
    """
    while True:
        got, status = os.waitpid(-1 if reap_all else pid, 0)
        if got == pid:
            return status


def _read_available(fd: int) -> bytes:
    """What the crash pipe holds now (its write end may live on in other processes)."""
    os.set_blocking(fd, False)
    out = b""
    while len(out) < _CRASH_CAP:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        out += chunk
    return out[:_CRASH_CAP]


def _power_off(system: System, root: str) -> None:
    try:
        system.sync()
        system.reboot()
    except OSError as e:
        from guest.crash import panic

        panic(root, f"reboot failed: {e}")


def _run_init(crash_fd: int) -> int:
    from guest.env import Env
    from guest.lifecycle import GuestRun
    from guest.syscalls import LinuxSystem

    return GuestRun(Env(LinuxSystem(), crash_fd=crash_fd)).run()


def ensure_std_fds() -> None:
    """Give fds 0-2 a target (/dev/null) if the kernel found no /dev/console for init.

    First thing PID 1 does: otherwise the crash pipe could land on fd 1 or 2, and the
    init process's stdio capture would replace it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:  # no devtmpfs yet: /dev/console was in the image, so not expected
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def main() -> None:
    """Entry point of ``/init``: run, then reboot (never returns in a real guest)."""
    from guest.syscalls import LinuxSystem

    ensure_std_fds()
    supervise(_run_init, LinuxSystem())
