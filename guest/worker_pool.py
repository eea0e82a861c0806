"""The init process's handle on the worker parent (:mod:`guest.worker_parent` has the protocol).

>>> pool = WorkerPool.fork()
>>> pid = pool.spawn("spin", {"cgroup": "cg0", "duration_s": 1.0})
>>> pool.start()
>>> ended = pool.wait_ended(2.0)
>>> pool.close()
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time

import msgpack

from guest import worker_parent as wp
from guest.crash import describe_status

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = ("WorkerError", "WorkerPool")

_REPLY_S = 30.0  # a spawn is a fork: slow under a loaded TCG guest, never this slow
_CLOSE_S = 8.0  # the parent's own SIGKILL-and-reap bound plus margin


class WorkerError(Exception):
    """The worker parent refused a request, or is gone (the message says how it ended)."""


class WorkerPool:
    """Spawn, start, signal workers and take their ``ended`` events.

    Not thread-safe: one thread (the init process's main thread) drives it.

    :param pid: the worker parent.
    :param req_fd: write end of its request pipe (owned).
    :param ev_fd: read end of its event pipe (owned).
    """

    def __init__(self, pid: int, req_fd: int, ev_fd: int) -> None:
        self.pid = pid
        self._req = req_fd
        self._ev = ev_fd
        self._unpacker = msgpack.Unpacker(max_buffer_size=wp.MSG_CAP)
        self._ended: list[dict[str, Any]] = []
        self.exit = ""  # how the parent ended, once reaped

    @classmethod
    def fork(cls, fault_fd: int = -1, single_threaded: bool = True) -> WorkerPool:
        """Fork the worker parent.

        :param fault_fd: the parent's faulthandler target (COM2), or -1.
        :param single_threaded: refuse to fork from a process that runs other threads.
        :raises WorkerError: threads are running (a bug in the init's phase order).
        """
        if single_threaded and threading.active_count() > 1:
            names = ", ".join(t.name for t in threading.enumerate())
            raise WorkerError(f"worker parent must be forked before any thread starts ({names})")
        req_r, req_w = os.pipe()
        ev_r, ev_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(req_w)
            os.close(ev_r)
            wp.serve(req_r, ev_w, fault_fd)
        os.close(req_r)
        os.close(ev_w)
        return cls(pid, req_w, ev_r)

    # -- requests ------------------------------------------------------------------------

    def spawn(self, kind: str, args: dict[str, Any]) -> int:
        """Fork a worker of ``kind`` (it waits for :meth:`start`); return its pid."""
        reply = self._request({"op": wp.OP_SPAWN, "kind": kind, "args": args}, wp.EV_SPAWNED)
        return int(reply["pid"])

    def start(self) -> int:
        """Start every waiting worker; return how many."""
        return int(self._request({"op": wp.OP_START}, wp.EV_STARTED)["count"])

    def signal(self, sig: int, pids: list[int] | None = None) -> int:
        """Send ``sig`` to every worker not reaped yet (or to those of ``pids``); return how many."""
        msg: dict[str, Any] = {"op": wp.OP_SIGNAL, "sig": int(sig)}
        if pids is not None:
            msg["pids"] = [int(p) for p in pids]
        return int(self._request(msg, wp.EV_SIGNALLED)["count"])

    def wait_ended(self, timeout_s: float) -> list[dict[str, Any]]:
        """The ``ended`` events received so far, waiting up to ``timeout_s`` for the first."""
        if not self._ended:
            ev = self._next(timeout_s)
            if ev is not None:
                self._take(ev)
        while (ev := self._next(0.0)) is not None:
            self._take(ev)
        out, self._ended = self._ended, []
        return out

    def close(self) -> dict[str, Any]:
        """Ask the parent to kill what is left and exit; reap it (bounded). Never raises.

        :return: ``spawned``, ``killed`` (from its reply, -1 without one) and ``exit``.
        """
        stats: dict[str, Any] = {"spawned": -1, "killed": -1}
        if self._req >= 0:
            try:
                bye = self._request({"op": wp.OP_QUIT}, wp.EV_BYE, _CLOSE_S)
                stats.update(spawned=bye.get("spawned", -1), killed=bye.get("killed", -1))
            except WorkerError:
                pass
            os.close(self._req)
            os.close(self._ev)
            self._req = self._ev = -1
        self._reap(_CLOSE_S)
        stats["exit"] = self.exit
        return stats

    # -- plumbing ------------------------------------------------------------------------

    def _request(
        self, msg: dict[str, Any], want: str, timeout_s: float = _REPLY_S
    ) -> dict[str, Any]:
        if self._req < 0:
            raise WorkerError("worker parent closed")
        data = msgpack.packb(msg)
        try:
            while data:
                data = data[os.write(self._req, data) :]
        except BrokenPipeError:
            raise self._lost() from None
        end = time.monotonic() + timeout_s
        while True:
            ev = self._next(max(0.0, end - time.monotonic()))
            if ev is None:
                raise WorkerError(f"worker parent did not answer {msg['op']!r} in {timeout_s:g} s")
            if ev.get("ev") == wp.EV_ENDED:
                self._take(ev)
            elif ev.get("ev") == want:
                return ev
            elif ev.get("ev") == wp.EV_FAILED:
                raise WorkerError(f"{msg['op']}: {ev.get('error')}")
            else:
                raise WorkerError(f"worker parent answered {msg['op']!r} with {ev!r}")

    def _next(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message (None after ``timeout_s``); :class:`WorkerError` at EOF."""
        end = time.monotonic() + timeout_s
        while True:
            for msg in self._unpacker:
                if isinstance(msg, dict):
                    return msg
            ready, _, _ = select.select([self._ev], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                return None
            data = os.read(self._ev, 65536)
            if not data:
                raise self._lost()
            self._unpacker.feed(data)

    def _take(self, ev: dict[str, Any]) -> None:
        if isinstance(ev.get("pid"), int):
            self._ended.append(ev)

    def _lost(self) -> WorkerError:
        self._reap(2.0)
        return WorkerError(f"worker parent (pid {self.pid}) {self.exit or 'stopped answering'}")

    def _reap(self, timeout_s: float) -> None:
        """Wait for the parent; SIGKILL it after ``timeout_s``, give up a second later."""
        end = time.monotonic() + timeout_s
        killed = False
        while not self.exit:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exit = "reaped elsewhere"
                return
            if pid == self.pid:
                self.exit = describe_status(status)
                return
            if time.monotonic() >= end:
                if killed:
                    self.exit = "not reaped (SIGKILL sent)"
                    return
                os.kill(self.pid, signal.SIGKILL)
                killed, end = True, time.monotonic() + 1.0
            time.sleep(0.005)
