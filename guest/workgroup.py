"""Grouped work types (pairs, fan-out groups, mutex contenders) and the state a group shares.

Workers ``index`` ``g*size .. g*size+size-1`` of a cgroup form group ``g``
(:func:`guest.workspec.group_size`). The worker parent, single-threaded, makes a group's
shared page (an anonymous ``MAP_SHARED`` mapping holding the native ``sl_shared``: futex
words, stamps, the group's stop flag) and its pipes just before forking its first member
(:class:`Groups`), hands them to every member through the fork, and drops its own copies
once the last member is forked; a member closes every other group's descriptors, so a pipe
reaches EOF when its partner is gone. Nothing is left in a filesystem.

A member that ends sets the group's stop flag, so the others stop waiting for it.
"""

from __future__ import annotations

import errno
import mmap
import os

from guest.workspec import TABLE, group_size, with_defaults
from guest.worktypes import kind

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

    from guest.workmeter import Ctl

__all__ = ("GROUP_ARG", "Groups")

#: The spawn-args key (in the forked worker only, never on a wire) holding its group.
GROUP_ARG = "_group"
_PIPES = {"pipe_io": 2, "cache_pipe": 2}  # pipes per group of these types
_SHARED_BYTES = 4096  # >= sizeof(sl_shared)


class _Group:
    __slots__ = ("mem", "pipes", "size", "left")

    def __init__(self, size: int, pipes: int) -> None:
        self.mem = mmap.mmap(-1, _SHARED_BYTES)  # anonymous MAP_SHARED, zero-filled
        self.pipes = [os.pipe() for _ in range(pipes)]
        self.size = size
        self.left = set(range(size))  # ranks not forked yet

    def fds(self) -> list[int]:
        return [fd for pair in self.pipes for fd in pair]

    def close(self) -> None:
        for fd in self.fds():
            os.close(fd)
        self.pipes = []
        self.mem.close()


class Groups:
    """The worker parent's open groups (see the module docstring)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], _Group] = {}

    def before_fork(self, name: Any, args: dict[str, Any]) -> tuple[Any, int] | None:
        """The group and rank of a worker about to be forked, None for an ungrouped type.

        The type is the spawn's kind, or the ``work`` map's ``type`` of a wrapper kind; the
        rank is ``args["index"] % size``. A rank given twice starts a new group (the old one
        is dropped).
        """
        params = args.get("params")
        work = args.get("work")
        if isinstance(work, dict) and name not in TABLE:  # a wrapper kind: {"type", "params"}
            name, params = work.get("type"), work.get("params")
        if not isinstance(name, str) or name not in TABLE:
            return None
        size = group_size(name, with_defaults(name, params if isinstance(params, dict) else {}))
        if size <= 1:
            return None
        index = args.get("index", 0)
        index = index if isinstance(index, int) and index >= 0 else 0
        key = (str(args.get("cgroup", "")), index // size)
        g, rank = self._open.get(key), index % size
        if g is not None and rank not in g.left:
            self._drop(key)
            g = None
        if g is None:
            g = self._open[key] = _Group(size, _PIPES.get(name, 0))
        return key, rank

    def in_child(self, placed: tuple[Any, int]) -> dict[str, Any]:
        """In the forked member: close every other group; return what the work type gets."""
        key, rank = placed
        mine = self._open[key]
        for k, g in list(self._open.items()):
            if k != key:
                g.close()
        return {"mem": mine.mem, "pipes": mine.pipes, "rank": rank, "size": mine.size}

    def after_fork(self, placed: tuple[Any, int]) -> None:
        """In the parent: the rank is placed; drop the group once every member is."""
        key, rank = placed
        g = self._open.get(key)
        if g is not None:
            g.left.discard(rank)
            if not g.left:
                self._drop(key)

    def close(self) -> None:
        for key in list(self._open):
            self._drop(key)

    def _drop(self, key: tuple[str, int]) -> None:
        self._open.pop(key).close()


class _Member:
    """A member's view of its group: the shared struct and its rank.

    A wrapper may call the work type once per step phase: what the group holds (its pipes'
    ends, the turn, the stop flag) lives in the group map across those calls, and only the
    last call (not ended by a phase change) leaves the group.
    """

    def __init__(self, ctl: Ctl) -> None:
        g = ctl.args.get(GROUP_ARG)
        if not isinstance(g, dict):
            raise RuntimeError(
                f"{ctl.kind} is a grouped work type: spawn it through the worker parent"
            )
        self.ctl, self.group = ctl, g
        self.rank, self.size, self.pipes = g["rank"], g["size"], g["pipes"]
        self.sh = ctl.ffi.cast("sl_shared *", ctl.ffi.from_buffer(g["mem"]))
        self.stop = ctl.ffi.addressof(self.sh[0], "stop")
        ctl.extra["rank"] = self.rank

    def running(self) -> bool:
        return self.ctl.running() and not self.sh.stop

    def leave(self) -> bool:
        """At the end of a call: leave the group unless only the step phase changed.

        :return: whether it left (the caller then releases what it holds).
        """
        if self.ctl.watch_changed():
            return False
        self.sh.stop = 1
        return True


def _pong(ctl: Ctl, iters: int, buf: Any, size: int) -> None:
    g = _Member(ctl)
    ends = g.group.get("ends")
    if ends is None:
        (a_r, a_w), (b_r, b_w) = g.pipes  # a: rank 0 -> 1, b: rank 1 -> 0
        ends = (b_r, a_w) if g.rank == 0 else (a_r, b_w)
        for fd in (a_r, a_w, b_r, b_w):
            if fd not in ends:
                os.close(fd)
        g.group["ends"] = ends
    if not ends:  # closed when this member left: its group stopped (a partner went)
        ctl.extra["partner"] = "gone"
        return
    rfd, wfd = ends
    try:
        while g.running():
            # Rank 0 opens the exchange once, in whichever call first gets this far.
            first = 1 if g.rank == 0 and not g.group.get("served") else 0
            rc = ctl.lib.sl_pipe_pong(
                ctl.m, ctl.deadline(), g.stop, rfd, wfd, iters, buf, size, first
            )
            g.group["served"] = True
            if rc == -errno.EPIPE:
                ctl.extra["partner"] = "gone"
                break
            ctl.check(rc)
    finally:
        if g.leave():  # a later call of this worker (the group stopped) must not close again
            os.close(rfd)
            os.close(wfd)
            g.group["ends"] = ()


@kind("pipe_io")
def _pipe_io(ctl: Ctl, p: dict[str, Any]) -> None:
    """Pipe ping-pong: spin burst_iters, send a stamp, wait for the partner's."""
    _pong(ctl, p["burst_iters"], ctl.ffi.NULL, 0)


@kind("cache_pipe")
def _cache_pipe(ctl: Ctl, p: dict[str, Any]) -> None:
    """Pipe ping-pong with a cache pass over size_kb per turn."""
    size = p["size_kb"] * 1024
    _pong(ctl, p["burst_iters"], ctl.ffi.new("uint8_t[]", size), size)


@kind("futex_ping_pong")
def _futex_ping_pong(ctl: Ctl, p: dict[str, Any]) -> None:
    """Futex ping-pong: the pair hands a turn word back and forth."""
    g = _Member(ctl)
    try:
        while g.running():
            ctl.check(ctl.lib.sl_futex_pong(ctl.m, ctl.deadline(), g.sh, g.rank, p["spin_iters"]))
    finally:
        g.leave()


@kind("futex_fan_out")
def _futex_fan_out(ctl: Ctl, p: dict[str, Any]) -> None:
    """Rank 0 wakes fan_out receivers at once; each spins and reports back."""
    g = _Member(ctl)
    ctl.extra["role"] = "messenger" if g.rank == 0 else "receiver"
    try:
        while g.running():
            ctl.check(
                ctl.lib.sl_fan_out(
                    ctl.m,
                    ctl.deadline(),
                    g.sh,
                    g.rank,
                    p["fan_out"],
                    p["spin_iters"],
                    ctl.ffi.NULL,
                    0,
                    0,
                    0,
                )
            )
    finally:
        g.leave()


def matrix_side(cache_kb: int) -> int:
    """Side of the three square u64 matrices that fill ``cache_kb``."""
    return max(2, int((cache_kb * 1024 / 8 / 3) ** 0.5))


@kind("fan_out_compute")
def _fan_out_compute(ctl: Ctl, p: dict[str, Any]) -> None:
    """Fan-out wakeups; each receiver multiplies matrices ops times, the messenger sleeps."""
    g = _Member(ctl)
    ctl.extra["role"] = "messenger" if g.rank == 0 else "receiver"
    n = matrix_side(p["cache_kb"])
    mat = ctl.ffi.new("uint64_t[]", [(i * 2654435761) & 0xFFFF for i in range(3 * n * n)])
    try:
        while g.running():
            ctl.check(
                ctl.lib.sl_fan_out(
                    ctl.m,
                    ctl.deadline(),
                    g.sh,
                    g.rank,
                    p["fan_out"],
                    0,
                    mat if g.rank else ctl.ffi.NULL,
                    n,
                    p["ops"],
                    p["sleep_us"] * 1000,
                )
            )
    finally:
        g.leave()


@kind("mutex_contention")
def _mutex_contention(ctl: Ctl, p: dict[str, Any]) -> None:
    """Contenders take one futex mutex: hold_iters inside, work_iters outside."""
    g = _Member(ctl)
    try:
        while g.running():
            ctl.check(
                ctl.lib.sl_mutex(ctl.m, ctl.deadline(), g.sh, p["hold_iters"], p["work_iters"])
            )
    finally:
        g.leave()
