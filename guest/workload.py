"""The ``cgroup-spinners`` scenario: W CPU-spinning workers in each of N cgroups.

Each worker is a forked child (no exec) that waits on a shared start pipe, spins on a fixed
unit of arithmetic for ``duration`` seconds, and sends one msgpack
:class:`~guest.verdict.WorkerReport` map to the parent through its own pipe. A stalled or
starved worker shows as few work units and a long gap between consecutive checkpoints.

The parent never trusts a child to finish: it polls the pipes against a deadline, sends
SIGTERM on a stop request (workers then report what they did so far), SIGKILLs stragglers,
waits for every worker, and removes the cgroups.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections import namedtuple

import msgpack

from guest.cgroups import CgroupTree
from guest.spec import RunSpec
from guest.verdict import Verdict, WorkerReport, judge

TYPE_CHECKING = False  # typing and dataclasses cost ~1.5 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

__all__ = ("UNIT_ITERS", "SpinResult", "SpinnerOutcome", "run_cgroup_spinners", "spin")

#: Iterations of one work unit: ~1 ms under a loaded TCG guest (measured ~18 us per
#: iteration there), a few us natively, so checkpoints resolve ms-scale stalls.
UNIT_ITERS = 50
_REPORT_CAP = 64 * 1024  # bytes accepted from one worker's pipe
_POLL_S = 0.05


#: Work done by :func:`spin`: ``work_units: int``, ``max_gap_ns: int``.
SpinResult = namedtuple("SpinResult", "work_units max_gap_ns")


def _unit(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFF
    return x


def spin(
    duration_ns: int,
    stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], int] = time.monotonic_ns,
    unit_iters: int = UNIT_ITERS,
) -> SpinResult:
    """Do fixed work units until ``duration_ns`` passed or ``stop()`` is true.

    :return: units completed and the longest gap between consecutive checkpoints
        (the start counts as the first checkpoint).
    """
    start = last = clock()
    deadline = start + duration_ns
    units = max_gap = 0
    while not stop():
        _unit(unit_iters)
        units += 1
        now = clock()
        max_gap = max(max_gap, now - last)
        last = now
        if now >= deadline:
            break
    return SpinResult(units, max_gap)


def _worker_main(cgroup: str, go_fd: int, out_fd: int, duration_s: float) -> NoReturn:
    """Body of a forked worker; never returns (a child must not unwind into PID 1's code)."""
    report: dict = {
        "cgroup": cgroup,
        "pid": os.getpid(),
        "work_units": 0,
        "cpu_time_ns": 0,
        "max_gap_ms": 0.0,
        "error": "",
    }
    try:
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        os.read(go_fd, 1)  # EOF when the parent closes the write end: all start together
        cpu0 = time.process_time_ns()
        res = spin(int(duration_s * 1e9), stopped.is_set)
        report.update(
            work_units=res.work_units,
            max_gap_ms=res.max_gap_ns / 1e6,
            cpu_time_ns=time.process_time_ns() - cpu0,
        )
    except BaseException as e:  # noqa: B036 - the report must go out whatever happened
        report["error"] = f"{type(e).__name__}: {e}"
    try:
        data = msgpack.packb(report)
        while data:
            data = data[os.write(out_fd, data) :]
    finally:
        os._exit(0)


class _Worker:
    __slots__ = ("cgroup", "pid", "fd", "buf", "done", "reaped")

    def __init__(self, cgroup: str, pid: int, fd: int) -> None:
        self.cgroup = cgroup
        self.pid = pid
        self.fd = fd
        self.buf = bytearray()
        self.done = False  # pipe reached EOF
        self.reaped = False  # waited for: the pid may belong to someone else now

    def poll_exit(self) -> bool:
        """Reap the worker if it exited; True once it is gone."""
        if not self.reaped:
            try:
                self.reaped = os.waitpid(self.pid, os.WNOHANG)[0] == self.pid
            except ChildProcessError:  # reaped by PID 1's reaper (same thread: no race)
                self.reaped = True
        return self.reaped

    def report(self) -> WorkerReport:
        try:
            return WorkerReport.from_map(msgpack.unpackb(bytes(self.buf)))
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            msg = "no report" if not self.buf else f"bad report: {e}"
            return WorkerReport(self.cgroup, self.pid, 0, 0, 0.0, msg)


class SpinnerOutcome(namedtuple("SpinnerOutcome", "verdict reports stopped cleanup_errors")):
    """Result of :func:`run_cgroup_spinners`.

    :param verdict: the :class:`~guest.verdict.Verdict`.
    :param reports: one :class:`~guest.verdict.WorkerReport` per worker.
    :param stopped: a stop request cut the run short.
    :param cleanup_errors: cgroup directories that could not be removed.
    """

    __slots__ = ()
    verdict: Verdict
    reports: list[WorkerReport]
    stopped: bool
    cleanup_errors: list[str]


def _fork_workers(
    spec: RunSpec, tree: CgroupTree, names: list[str], go_r: int, go_w: int, workers: list[_Worker]
) -> None:
    for cg in names:
        for _ in range(spec.workers):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(go_w)
                os.close(r)
                _worker_main(cg, go_r, w, spec.duration)
            os.close(w)
            workers.append(_Worker(cg, pid, r))
            tree.move(cg, pid)


def _collect(
    workers: list[_Worker], deadline: float, stop: threading.Event, on_tick: Callable[[], None]
) -> bool:
    """Read reports until every pipe hit EOF or the deadline; SIGTERM all once on stop."""
    stopped = False
    while not all(w.done for w in workers) and time.monotonic() < deadline:
        if stop.is_set() and not stopped:
            stopped = True
            _signal_all(workers, signal.SIGTERM)
        open_fds = {w.fd: w for w in workers if not w.done}
        ready, _, _ = select.select(list(open_fds), [], [], _POLL_S)
        for fd in ready:
            w = open_fds[fd]
            chunk = os.read(fd, 4096)
            if not chunk or len(w.buf) + len(chunk) > _REPORT_CAP:
                w.done = True
            else:
                w.buf += chunk
        on_tick()
    return stopped


def _signal_all(workers: list[_Worker], sig: int) -> None:
    # Never signal a reaped pid: it may have been reused by an unrelated process.
    for w in workers:
        if not w.poll_exit():
            try:
                os.kill(w.pid, sig)
            except ProcessLookupError:  # not expected: an unreaped child (or zombie) exists
                pass


def _reap_all(workers: list[_Worker], timeout_s: float = 5.0) -> None:
    """SIGKILL whatever is left and wait for every worker (bounded)."""
    _signal_all(workers, signal.SIGKILL)
    end = time.monotonic() + timeout_s
    while not all(w.poll_exit() for w in workers) and time.monotonic() < end:
        time.sleep(0.01)
    for w in workers:
        if w.fd >= 0:
            os.close(w.fd)
            w.fd = -1


def run_cgroup_spinners(
    spec: RunSpec,
    tree: CgroupTree,
    stop: threading.Event | None = None,
    on_tick: Callable[[], None] = lambda: None,
    grace_s: float | None = None,
) -> SpinnerOutcome:
    """Run the scenario and judge it.

    :param spec: the run spec (cgroups, workers, duration, thresholds).
    :param tree: where to create the cgroups.
    :param stop: set to stop the workers early (they report partial work).
    :param on_tick: called every poll interval (PID 1 reaps orphans there).
    :param grace_s: time allowed beyond ``duration`` before workers are killed;
        default ``max(5, duration)`` (TCG is slow).
    :raises CgroupError: cgroup setup failed (workers killed, cgroups removed first).
    """
    stop = stop or threading.Event()
    grace = max(5.0, spec.duration) if grace_s is None else grace_s
    workers: list[_Worker] = []
    go_r, go_w = os.pipe()
    try:
        names = tree.create(spec.cgroups)
        _fork_workers(spec, tree, names, go_r, go_w, workers)
        os.close(go_w)
        go_w = -1
        stopped = _collect(workers, time.monotonic() + spec.duration + grace, stop, on_tick)
        reports = [w.report() for w in workers]
    finally:
        for fd in (go_r, go_w):
            if fd >= 0:
                os.close(fd)
        _reap_all(workers)
        cleanup = tree.remove()
    expected = {n: spec.workers for n in names}
    verdict = judge(reports, expected, spec.fairness, spec.max_gap_ms)
    return SpinnerOutcome(verdict, reports, stopped, cleanup)
