"""The worker parent: a single-threaded process that forks the workers and reports their ends.

The init process forks it before starting any thread: a fork copies only the calling thread,
so the child of a threaded process can inherit a lock (a futex, malloc's, a pipe writer's)
that no thread will ever release. Everything a worker needs is imported before that fork,
so forking a worker costs no import.

Protocol: two pipes, one msgpack map per message. Requests (init -> parent), each answered
by one reply, in order:

- ``{"op": "spawn", "kind": str, "args": map}`` -> ``{"ev": "spawned", "pid": int}`` or
  ``{"ev": "failed", "error": str}``. The worker waits at the start gate.
- ``{"op": "start"}`` -> ``{"ev": "started", "count": int}``: every waiting worker starts.
- ``{"op": "signal", "sig": int, "pids": [int] (optional)}`` -> ``{"ev": "signalled",
  "count": int}``: to every worker not reaped yet (a reaped pid may belong to another process
  already), or to those of ``pids`` not reaped yet.
- ``{"op": "quit"}`` -> ``{"ev": "bye", "spawned": int, "killed": int}``; the parent kills and
  reaps what is left, then exits.

Between replies, one event per worker that ended (its pipe drained and the worker reaped):
``{"ev": "ended", "pid": int, "exit": "exit 0" | "killed by SIGKILL" | ..., "report": map or
None, "error": str}``. EOF on the request pipe (the init process died) ends the parent the
same way as ``quit``.
"""

from __future__ import annotations

import os
import select
import signal
import time

import msgpack

from guest.crash import describe_status

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    Kind = Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]

__all__ = (
    "EV_BYE",
    "EV_ENDED",
    "EV_FAILED",
    "EV_SIGNALLED",
    "EV_SPAWNED",
    "EV_STARTED",
    "MSG_CAP",
    "OP_QUIT",
    "OP_SIGNAL",
    "OP_SPAWN",
    "OP_START",
    "REPORT_CAP",
    "serve",
)

OP_SPAWN, OP_START, OP_SIGNAL, OP_QUIT = "spawn", "start", "signal", "quit"
EV_SPAWNED, EV_FAILED, EV_STARTED, EV_SIGNALLED, EV_BYE, EV_ENDED = (
    "spawned",
    "failed",
    "started",
    "signalled",
    "bye",
    "ended",
)
REPORT_CAP = 64 * 1024  # bytes accepted from one worker's pipe
MSG_CAP = 1 << 20  # largest buffered protocol message, either way
_POLL_S = 0.05  # reap interval while workers exist
_REAP_S = 5.0  # bound on the final SIGKILL-and-reap
_PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h


class _Worker:
    __slots__ = ("pid", "fd", "buf", "overflow")

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd  # non-blocking read end of the report pipe; -1 once closed
        self.buf = bytearray()
        self.overflow = False

    def drain(self) -> None:
        """Read what the pipe holds now; close it at EOF or past :data:`REPORT_CAP`."""
        while self.fd >= 0:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if chunk and len(self.buf) + len(chunk) <= REPORT_CAP:
                self.buf += chunk
                continue
            self.overflow = bool(chunk)
            os.close(self.fd)
            self.fd = -1

    def ended(self, status: int) -> dict[str, Any]:
        report, error = None, "no report"
        if self.overflow:
            error = f"report over {REPORT_CAP} bytes"
        elif self.buf:
            try:
                msg = msgpack.unpackb(bytes(self.buf))
                report, error = msg.get("report"), str(msg.get("error", ""))
            except (ValueError, TypeError, AttributeError, msgpack.UnpackException) as e:
                error = f"bad report: {e}"
        return {
            "ev": EV_ENDED,
            "pid": self.pid,
            "exit": describe_status(status),
            "report": report,
            "error": error,
        }


class _InitGone(Exception):
    """The request pipe hit EOF or the event pipe broke: the init process is gone."""


class WorkerParent:
    """The parent's state and loop (see the module docstring for the protocol).

    :param req_fd: read end of the request pipe.
    :param ev_fd: write end of the event pipe.
    :param kinds: work type name -> function (:data:`guest.worktypes.KINDS`).
    """

    def __init__(self, req_fd: int, ev_fd: int, kinds: dict[str, Kind]) -> None:
        self._req = req_fd
        self._ev = ev_fd
        self._kinds = kinds
        self._unpacker = msgpack.Unpacker(max_buffer_size=MSG_CAP)
        self._workers: dict[int, _Worker] = {}  # by pid, until reaped
        self._by_fd: dict[int, _Worker] = {}  # by open pipe fd
        self._gate = os.pipe()  # workers block reading it; closing the write end starts them
        self._waiting = 0
        self.spawned = 0
        self._pid = os.getpid()
        self._prctl = _load_prctl()
        from guest.workgroup import GROUP_ARG, Groups  # the work modules: this process only

        self._group_arg = GROUP_ARG
        self._groups = Groups()  # shared state of grouped work types, made before each fork

    def serve(self) -> None:
        """Answer requests until ``quit`` or EOF, reporting each worker that ends."""
        try:
            while self._step():
                pass
        except _InitGone:
            pass
        self._kill_all()
        self._groups.close()

    def _step(self) -> bool:
        # poll, not select: up to MAX_TOTAL_WORKERS pipes may exceed select's FD_SETSIZE.
        poller = select.poll()
        poller.register(self._req, select.POLLIN)
        for fd in self._by_fd:
            poller.register(fd, select.POLLIN)
        events = poller.poll(int(_POLL_S * 1000) if self._workers else None)
        req_ready = False
        for fd, _ in events:
            if fd == self._req:
                req_ready = True
            elif fd in self._by_fd:
                self._by_fd[fd].drain()
                if self._by_fd[fd].fd < 0:
                    del self._by_fd[fd]
        self._reap()
        return self._on_requests() if req_ready else True

    def _on_requests(self) -> bool:
        data = os.read(self._req, 65536)
        if not data:
            raise _InitGone
        self._unpacker.feed(data)
        for req in self._unpacker:
            op = req.get("op") if isinstance(req, dict) else None
            if op == OP_QUIT:
                killed = self._kill_all()
                self._send({"ev": EV_BYE, "spawned": self.spawned, "killed": killed})
                return False
            self._send(self._answer(op, req))
        return True

    def _answer(self, op: object, req: dict[str, Any]) -> dict[str, Any]:
        if op == OP_SPAWN:
            return self._spawn(req)
        if op == OP_START:
            os.close(self._gate[1])
            os.close(self._gate[0])
            self._gate = os.pipe()
            count, self._waiting = self._waiting, 0
            return {"ev": EV_STARTED, "count": count}
        if op == OP_SIGNAL:
            sig = req.get("sig")
            if not isinstance(sig, int) or isinstance(sig, bool):
                return {"ev": EV_FAILED, "error": f"bad signal {sig!r}"}
            pids = req.get("pids")
            if pids is None:
                targets = list(self._workers)
            elif isinstance(pids, list):
                targets = [p for p in pids if isinstance(p, int) and p in self._workers]
            else:
                return {"ev": EV_FAILED, "error": f"bad pids {str(pids)[:40]!r}"}
            for pid in targets:  # none is reaped yet: the pid is still ours
                _kill(pid, sig)
            return {"ev": EV_SIGNALLED, "count": len(targets)}
        return {"ev": EV_FAILED, "error": f"unknown request {op!r}"}

    def _spawn(self, req: dict[str, Any]) -> dict[str, Any]:
        kind = self._kinds.get(req.get("kind"))  # type: ignore[arg-type]
        args = req.get("args", {})
        if kind is None or not isinstance(args, dict):
            return {"ev": EV_FAILED, "error": f"unknown work type {req.get('kind')!r}"}
        placed = self._groups.before_fork(req.get("kind"), args)
        r, w = os.pipe()
        # SIGTERM stays blocked until the worker installed its handler: a stop request
        # right after the fork must still end with a report.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            pid = os.fork()
            if pid == 0:
                if placed is not None:
                    args = {**args, self._group_arg: self._groups.in_child(placed)}
                self._become_worker(kind, args, r, w, mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if placed is not None:
                self._groups.after_fork(placed)
        os.close(w)
        os.set_blocking(r, False)
        self._workers[pid] = self._by_fd[r] = _Worker(pid, r)
        self._waiting += 1
        self.spawned += 1
        return {"ev": EV_SPAWNED, "pid": pid}

    def _become_worker(
        self, kind: Kind, args: dict[str, Any], r: int, out: int, mask: Any
    ) -> NoReturn:
        report: Any = None
        error = ""
        try:
            for fd in (self._req, self._ev, self._gate[1], r, *self._by_fd):
                os.close(fd)
            stopped = [False]
            signal.signal(signal.SIGTERM, lambda *_: stopped.__setitem__(0, True))
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._die_with_parent()
            os.read(self._gate[0], 1)  # EOF when the parent starts the batch
            os.close(self._gate[0])
            report = kind(args, lambda: stopped[0])
        except BaseException as e:  # noqa: B036 - the report must go out whatever happened
            error = f"{type(e).__name__}: {e}"
        try:
            try:
                data = msgpack.packb({"report": report, "error": error})
            except (TypeError, ValueError, OverflowError) as e:
                data = msgpack.packb({"report": None, "error": f"report not encodable: {e}"})
            while data:
                data = data[os.write(out, data) :]
        finally:
            os._exit(0)

    def _die_with_parent(self) -> None:
        """A worker must not outlive a parent that died (nobody would reap or stop it)."""
        if self._prctl is not None:
            self._prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != self._pid:  # died before the prctl took effect
            os._exit(1)

    def _reap(self) -> None:
        while self._workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = self._workers.pop(pid, None)
            if w is not None:
                self._close(w)
                self._send(w.ended(status))

    def _kill_all(self) -> int:
        """SIGKILL every worker left and reap them (bounded); return how many were killed."""
        killed = len(self._workers)
        for pid in self._workers:
            _kill(pid, signal.SIGKILL)
        end = time.monotonic() + _REAP_S
        while self._workers and time.monotonic() < end:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.01)
                continue
            w = self._workers.pop(pid, None)
            if w is not None:
                self._close(w)
        return killed

    def _close(self, w: _Worker) -> None:
        """Take what the pipe holds, then close it (a grandchild may keep it open)."""
        fd = w.fd
        w.drain()
        if w.fd >= 0:
            os.close(w.fd)
            w.fd = -1
        self._by_fd.pop(fd, None)

    def _send(self, msg: dict[str, Any]) -> None:
        data = msgpack.packb(msg)
        try:
            while data:
                data = data[os.write(self._ev, data) :]
        except BrokenPipeError:
            raise _InitGone from None


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # not expected: an unreaped child is at least a zombie
        pass


def _load_prctl() -> Any:
    try:
        import ctypes  # already loaded in the guest (mounts use it)

        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None


def _close_inherited(keep: set[int]) -> None:
    """Close every fd but ``keep``: the bulk port, the crash pipe, init's other ends."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listdir's own fd, already gone


def serve(
    req_fd: int, ev_fd: int, fault_fd: int = -1, kinds: dict[str, Kind] | None = None
) -> NoReturn:
    """Body of the forked worker parent; never returns.

    :param fault_fd: where faulthandler writes if this process crashes natively (COM2);
        -1 turns an inherited faulthandler off (its fd is closed here).
    """
    code = 0
    try:
        _close_inherited({0, 1, 2, req_fd, ev_fd, fault_fd})
        import faulthandler  # loaded already: the init process enabled it

        if fault_fd >= 0:
            faulthandler.enable(fault_fd, all_threads=False)
        elif faulthandler.is_enabled():
            faulthandler.disable()
        table = kinds
        if table is None:
            # Imported here, in the forked parent: the init process never pays for them.
            from guest.worktypes import KINDS, preload

            preload()
            table = KINDS
        WorkerParent(req_fd, ev_fd, table).serve()
    except BaseException:  # noqa: B036 - never unwind into the init process's code
        code = 1
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)
