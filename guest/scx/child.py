"""The scheduler process: spawned with piped output, watched and signalled through a pidfd.

PID 1 reaps every exited child (``waitpid(-1)`` in its orphan reaper), so a waitpid on the
scheduler can fail with ECHILD and its pid can be reused by the time we look: ktstr met
the same wall with SIGCHLD ignored. A pidfd is immune to both: it turns readable when the
process exits whoever reaps it, and ``pidfd_send_signal`` never reaches a recycled pid.
The exit status is read with ``waitid(P_PIDFD)``; if PID 1's reaper was faster, it can hand
the status over with :meth:`Child.claim`.
"""

from __future__ import annotations

import os
import select
import signal
import threading

__all__ = ("DEFAULT_ENV", "Child", "describe_status")

DEFAULT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"}
# Dispositions PID 1 may have set to SIG_IGN (Python ignores SIGPIPE and SIGXFSZ): an
# ignored signal survives exec, and a scheduler that ignores SIGINT by accident is no test.
_SIGDEF = (
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE,
    signal.SIGXFSZ, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2,
)  # fmt: skip


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def describe_status(raw: int) -> str:
    """A ``waitpid`` status as words: ``exited 1``, ``killed by SIGKILL``."""
    if os.WIFEXITED(raw):
        return f"exited {os.WEXITSTATUS(raw)}"
    if os.WIFSIGNALED(raw):
        core = " (core dumped)" if os.WCOREDUMP(raw) else ""
        return f"killed by {_signame(os.WTERMSIG(raw))}{core}"
    return f"status 0x{raw:x}"


def _describe_waitid(res: os.waitid_result) -> str:
    if res.si_code == os.CLD_EXITED:
        return f"exited {res.si_status}"
    core = " (core dumped)" if res.si_code == os.CLD_DUMPED else ""
    return f"killed by {_signame(res.si_status)}{core}"


class Child:
    """A spawned process with its stdout and stderr pipes (read ends owned here).

    :param pid: process id.
    :param pidfd: its pidfd, or -1 if it could not be opened (the process was already gone).
    :param fds: ``{"stdout": fd, "stderr": fd}``, the pipe read ends.
    """

    def __init__(self, pid: int, pidfd: int, fds: dict[str, int]) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.fds = fds
        self.status = ""  # how it ended, once known
        self._lock = threading.Lock()
        self._claimed: int | None = None

    @classmethod
    def spawn(cls, path: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        """Start ``path`` with ``args`` in a new session, stdin from /dev/null.

        :raises OSError: the program cannot be started (missing, not executable, bad ELF).
        """
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        try:
            pid = os.posix_spawn(
                path, [path, *args], env if env is not None else dict(DEFAULT_ENV),
                file_actions=actions, setsid=True, setsigdef=_SIGDEF, setsigmask=(),
            )  # fmt: skip
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # ESRCH: it exited and was reaped already
            pidfd = -1
        return cls(pid, pidfd, {"stdout": out_r, "stderr": err_r})

    def exited(self, timeout_s: float = 0.0) -> bool:
        """Wait up to ``timeout_s`` for the process to exit; True once it has."""
        if self.pidfd < 0 or self.status:
            return True
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        try:
            return bool(poller.poll(max(0, int(timeout_s * 1000))))
        except InterruptedError:  # PEP 475 retries; kept for clarity
            return False

    def reap(self) -> str:
        """Collect the exit status of an exited process (idempotent).

        :return: :attr:`status`, ``unknown (reaped elsewhere)`` if PID 1's reaper took it
            without :meth:`claim`, or "" while the process still runs.
        """
        with self._lock:
            if self.status:
                return self.status
            if self.pidfd >= 0:
                try:
                    res = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
                except ChildProcessError:
                    res = None
                else:
                    if res is None:
                        return ""
                    self.status = _describe_waitid(res)
                    return self.status
            raw = self._claimed
            self.status = describe_status(raw) if raw is not None else "unknown (reaped elsewhere)"
            return self.status

    def claim(self, pid: int, raw_status: int) -> bool:
        """Take the status of ``pid`` if it is this process (PID 1's reaper calls this)."""
        if pid != self.pid:
            return False
        with self._lock:
            self._claimed = raw_status
        return True

    def signal(self, sig: int) -> bool:
        """Send ``sig``; False if the process is gone (never reaches a reused pid)."""
        if self.pidfd < 0:
            return False
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            return False
        return True

    def close(self) -> None:
        """Close the pidfd (the pipe read ends belong to whoever read them)."""
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
