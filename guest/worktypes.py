"""What a worker does: one function per work type, run in a process forked by the worker parent.

``KINDS[name](args, stopped, step=None) -> report``: ``args`` is the spawn request's map
(``cgroup``, ``index`` (its rank in a grouped type's group is ``index % size``), ``params``
checked against :data:`guest.workspec.TABLE`, optional ``duration_s``), ``stopped()`` turns
true once the worker got SIGTERM (it then reports the work done so far), ``step()`` gives the
current step index (a segment per step, in one call: native state and a group's partners
carry on across steps), and the report is :data:`guest.workreport.REPORT`. A wrapper that
calls a type once per phase instead may put the parameters among the args; the report then
has one segment, ``report["segments"][0]``. Grouped types find their group's shared state
under ``args["_group"]`` (:mod:`guest.workgroup`: the worker parent adds it for spawns of the
type's own kind or of a wrapper kind whose args hold ``work = {"type", "params"}``). The timing loops are native
(:mod:`guest.native`); the functions here set them up and drive them in chunks
(:class:`guest.workmeter.Ctl`). Grouped types live in :mod:`guest.workgroup`, programs and
callables in :mod:`guest.payload`.

Two more kinds are wrappers: ``scenario`` (any work type inside a scenario, reported per
step: :mod:`guest.scenario.worker`) and ``exec`` (a payload program the worker becomes).

:func:`spin` is the pure-Python spin loop (the benchmark's reference; no native code).
"""

from __future__ import annotations

import errno
import mmap
import os
import time
from collections import namedtuple

from guest.scenario import worker as _scenario
from guest.workmeter import CHUNK_NS, Ctl, error_report
from guest.workspec import TABLE, parse_phases, with_defaults

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Body = Callable[[Ctl, dict[str, Any]], None]
    Kind = Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]

__all__ = ("KINDS", "UNIT_ITERS", "SpinResult", "kind", "preload", "scenario_worker", "spin")

#: Iterations of one pure-Python work unit (:func:`spin`).
UNIT_ITERS = 50

#: Work done by :func:`spin`: ``work_units: int``, ``max_gap_ns: int``, ``max_gap_at``
#: (the clock when the longest gap began), ``cpus`` (sorted CPUs seen, when ``cpu`` is given).
SpinResult = namedtuple("SpinResult", "work_units max_gap_ns max_gap_at cpus", defaults=(0, ()))

KINDS: dict[str, Kind] = {}


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
    cpu: Callable[[], int] | None = None,
) -> SpinResult:
    """Pure-Python work units until ``duration_ns`` passed or ``stop()`` is true.

    :param cpu: the CPU running the caller now (sampled once per unit), or None.
    :return: units completed and the longest gap between consecutive checkpoints
        (the start counts as the first checkpoint).
    """
    start = last = clock()
    deadline = start + duration_ns
    units = max_gap = 0
    gap_at = start
    seen: set[int] = set()
    while not stop():
        _unit(unit_iters)
        units += 1
        now = clock()
        if now - last > max_gap:
            max_gap, gap_at = now - last, last
        last = now
        if cpu is not None:
            seen.add(cpu())
        if now >= deadline:
            break
    return SpinResult(units, max_gap, gap_at, tuple(sorted(seen)))


def kind(name: str) -> Callable[[Body], Kind]:
    """Register ``body(ctl, params)`` as work type ``name`` (it must be in the table)."""
    if name not in TABLE:
        raise KeyError(f"work type {name!r} is not in guest.workspec.TABLE")

    def register(body: Body) -> Kind:
        def run(
            args: dict[str, Any],
            stopped: Callable[[], bool],
            step: Callable[[], int] | None = None,
        ) -> dict[str, Any]:
            try:
                ctl = Ctl(name, args, stopped, step)
            except Exception as e:  # noqa: BLE001 - no meter: a report that says why
                return error_report(name, args, f"{type(e).__name__}: {e}")
            error = ""
            try:
                # The parameters: under "params", or (a wrapper's call) among the args.
                body(ctl, with_defaults(name, args.get("params", args)))
            except Exception as e:  # noqa: BLE001 - the figures so far still go out
                error = f"{type(e).__name__}: {e}"
            return ctl.finish(error)

        run.__name__ = run.__qualname__ = name
        run.__doc__ = body.__doc__
        KINDS[name] = run
        return run

    return register


def preload() -> None:
    """Load the native loops before the worker parent forks workers (a fork costs no import)."""
    from guest.native import NativeUnavailable, load

    try:
        load()
    except NativeUnavailable:
        pass  # each worker reports it


# -- CPU ------------------------------------------------------------------------------------


@kind("spin")
def _spin(ctl: Ctl, p: dict[str, Any]) -> None:
    """Fixed units of arithmetic."""
    while ctl.running():
        ctl.check(ctl.lib.sl_spin(ctl.m, ctl.deadline(), ctl.stop_flag, p["unit_iters"]))


@kind("yield_heavy")
def _yield_heavy(ctl: Ctl, p: dict[str, Any]) -> None:
    """sched_yield() as fast as possible."""
    while ctl.running():
        ctl.check(ctl.lib.sl_yield(ctl.m, ctl.deadline(), ctl.stop_flag, p["spin_iters"]))


@kind("mixed")
def _mixed(ctl: Ctl, p: dict[str, Any]) -> None:
    """Spin, then yield."""
    while ctl.running():
        ctl.check(ctl.lib.sl_yield(ctl.m, ctl.deadline(), ctl.stop_flag, p["spin_iters"]))


def _sleep_for(ctl: Ctl, ns: int) -> None:
    """Sleep in chunks (each a timer wake), seeing stop and step changes between them."""
    end = ctl.lib.sl_now_ns() + ns
    while ctl.running():
        now = ctl.lib.sl_now_ns()
        if now >= end:
            return
        rc = ctl.lib.sl_sleep_until(ctl.m, min(end, now + CHUNK_NS, ctl.end_ns or end))
        if rc != -errno.EINTR:  # a signal: running() sees it
            ctl.check(rc)


class _Scratch:
    """An unlinked file in /tmp (tmpfs) and a block to write to it."""

    def __init__(self, ctl: Ctl, size: int) -> None:
        path = f"/tmp/schedlab-io-{os.getpid()}"
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.unlink(path)
        self.size = size
        self.buf = ctl.ffi.new("char[]", size)

    def close(self) -> None:
        os.close(self.fd)


@kind("io_sync")
def _io_sync(ctl: Ctl, p: dict[str, Any]) -> None:
    """Write and fdatasync a block, then sleep (a timer wake)."""
    io = _Scratch(ctl, p["bytes"])
    try:
        while ctl.running():
            ctl.check(
                ctl.lib.sl_io_sync(
                    ctl.m,
                    ctl.deadline(),
                    ctl.stop_flag,
                    io.fd,
                    io.buf,
                    io.size,
                    p["sleep_us"] * 1000,
                )
            )
    finally:
        io.close()


@kind("bursty")
def _bursty(ctl: Ctl, p: dict[str, Any]) -> None:
    """Spin for burst_ms, sleep for sleep_ms, repeat."""
    burst, nap = int(p["burst_ms"] * 1e6), int(p["sleep_ms"] * 1e6)
    lib = ctl.lib
    while ctl.running():
        end = lib.sl_now_ns() + burst
        while ctl.running() and lib.sl_now_ns() < end:
            ctl.check(lib.sl_spin(ctl.m, ctl.deadline(end), ctl.stop_flag, 1024))
        if nap:
            _sleep_for(ctl, nap)


def _cache(ctl: Ctl, p: dict[str, Any], yield_each: int) -> None:
    size = p["size_kb"] * 1024
    buf = ctl.ffi.new("uint8_t[]", size)
    while ctl.running():
        ctl.check(
            ctl.lib.sl_cache(
                ctl.m, ctl.deadline(), ctl.stop_flag, buf, size, p["stride"], yield_each
            )
        )


@kind("cache_pressure")
def _cache_pressure(ctl: Ctl, p: dict[str, Any]) -> None:
    """Strided read-modify-write passes over a buffer."""
    _cache(ctl, p, 0)


@kind("cache_yield")
def _cache_yield(ctl: Ctl, p: dict[str, Any]) -> None:
    """Cache passes, each followed by sched_yield()."""
    _cache(ctl, p, 1)


@kind("sequence")
def _sequence(ctl: Ctl, p: dict[str, Any]) -> None:
    """Loop over spin/sleep/yield/io phases."""
    phases = parse_phases(p["phases"])
    lib = ctl.lib
    io = _Scratch(ctl, 65536) if any(k == "io" for k, _ in phases) else None
    try:
        while ctl.running():
            for name, ms in phases:
                end = lib.sl_now_ns() + int(ms * 1e6)
                if name == "sleep":
                    _sleep_for(ctl, int(ms * 1e6))
                    continue
                while ctl.running() and lib.sl_now_ns() < end:
                    d = ctl.deadline(end)
                    if name == "spin":
                        ctl.check(lib.sl_spin(ctl.m, d, ctl.stop_flag, 1024))
                    elif name == "yield":
                        ctl.check(lib.sl_yield(ctl.m, d, ctl.stop_flag, 0))
                    elif io is not None:
                        ctl.check(
                            lib.sl_io_sync(ctl.m, d, ctl.stop_flag, io.fd, io.buf, io.size, 0)
                        )
    finally:
        if io is not None:
            io.close()


# -- churn ----------------------------------------------------------------------------------


@kind("fork_exit")
def _fork_exit(ctl: Ctl, p: dict[str, Any]) -> None:
    """Fork a child that exits at once (its first run is a wake latency), reap it."""
    shared = mmap.mmap(-1, 4096)  # MAP_SHARED: the child's stamp reaches the parent
    stamp = ctl.ffi.cast("uint64_t *", ctl.ffi.from_buffer(shared))
    try:
        while ctl.running():
            ctl.check(ctl.lib.sl_fork_exit(ctl.m, ctl.deadline(), ctl.stop_flag, stamp))
    finally:
        del stamp
        shared.close()


@kind("nice_sweep")
def _nice_sweep(ctl: Ctl, p: dict[str, Any]) -> None:
    """Spin while stepping nice through -20..19, one step per unit."""
    start = os.getpriority(os.PRIO_PROCESS, 0)
    nice = ctl.ffi.new("int *", start)
    try:
        while ctl.running():
            ctl.check(
                ctl.lib.sl_nice_sweep(ctl.m, ctl.deadline(), ctl.stop_flag, p["spin_iters"], nice)
            )
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, start)


@kind("affinity_churn")
def _affinity_churn(ctl: Ctl, p: dict[str, Any]) -> None:
    """Spin on each CPU of the worker's affinity in turn (one sched_setaffinity per unit)."""
    allowed = sorted(os.sched_getaffinity(0))
    cpus = ctl.ffi.new("int32_t[]", allowed)
    pos = ctl.ffi.new("int *")
    ctl.extra["cpus_allowed"] = len(allowed)
    try:
        while ctl.running():
            ctl.check(
                ctl.lib.sl_affinity_churn(
                    ctl.m, ctl.deadline(), ctl.stop_flag, p["spin_iters"], cpus, len(allowed), pos
                )
            )
    finally:
        os.sched_setaffinity(0, allowed)


@kind("policy_churn")
def _policy_churn(ctl: Ctl, p: dict[str, Any]) -> None:
    """Spin while cycling scheduling policies, one change per unit."""
    pols = [os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_IDLE]
    if p["rt"]:
        pols += [os.SCHED_FIFO, os.SCHED_RR]
    start_pol = os.sched_getscheduler(0)
    start_param = os.sched_getparam(0)
    arr = ctl.ffi.new("int32_t[]", pols)
    pos = ctl.ffi.new("int *")
    try:
        while ctl.running():
            ctl.check(
                ctl.lib.sl_policy_churn(
                    ctl.m, ctl.deadline(), ctl.stop_flag, p["spin_iters"], arr, len(pols), pos
                )
            )
    finally:
        os.sched_setscheduler(0, start_pol, start_param)


@kind("page_fault_churn")
def _page_fault_churn(ctl: Ctl, p: dict[str, Any]) -> None:
    """Fault pages of a private region in, spin between touches, drop them, repeat."""
    size = p["region_kb"] * 1024
    size -= size % 4096
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    ptr = ctl.ffi.cast("uint8_t *", ctl.ffi.from_buffer(region))
    seed = ctl.ffi.new("uint64_t *", os.getpid() * 0x9E3779B97F4A7C15 % (1 << 64) or 1)
    try:
        while ctl.running():
            ctl.check(
                ctl.lib.sl_page_faults(
                    ctl.m, ctl.deadline(), ctl.stop_flag, ptr, size, p["touches"], p["spins"], seed
                )
            )
    finally:
        del ptr
        region.close()


# -- wrappers -------------------------------------------------------------------------------


def scenario_worker(args: dict[str, Any], stopped: Callable[[], bool]) -> dict[str, Any]:
    """Kind ``scenario``: any work type, cut into per-step segments (:mod:`guest.scenario.worker`)."""
    return _scenario.run(args, stopped, KINDS)


KINDS[_scenario.KIND] = scenario_worker
KINDS["exec"] = _scenario.exec_payload

# The grouped types and the programs register themselves here (they import kind() above).
from guest import payload, workgroup  # noqa: E402, F401, I001
