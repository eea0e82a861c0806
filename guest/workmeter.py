"""A worker's measurement: the native meter, chunked loops, per-step segments, the report.

A work type's loop is Python orchestrating native chunks::

    ctl = Ctl("spin", args, stopped, step)
    while ctl.running():                      # stop, duration, step change, timeline
        ctl.check(ctl.lib.sl_spin(ctl.m, ctl.deadline(), ctl.stop_flag, 1024))
    report = ctl.finish()

Each native call returns within :data:`CHUNK_NS` (or at the run's end), so a SIGTERM (its
Python handler runs between chunks) or a step change is seen within one chunk. The gap a
checkpoint measures spans the Python code between chunks too, so an interpreter stall shows.

``step`` is a zero-argument callable giving the current step index (the scenario runner's
shared step counter); when it changes, the figures so far become one segment
(:data:`guest.workreport.SEGMENT`) and new ones start. The report is
:data:`guest.workreport.REPORT`.
"""

from __future__ import annotations

import math
import os

from guest.native import load
from guest.workreport import MAX_CPU, MAX_SEGMENTS, MAX_TIMELINE

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ("CHUNK_NS", "TIMELINE_NS", "Ctl", "error_report")

CHUNK_NS = 20_000_000  #: longest native call: how late a stop or step change may be seen
TIMELINE_NS = 50_000_000  #: first timeline spacing (doubled whenever the timeline is full)
_SCHEDSTAT = "/proc/self/schedstat"
_MAX_EXTRA = 8 * 1024  #: characters of text an extra metric may hold


def _schedstat() -> tuple[int, int, int] | None:
    """(run ns, runnable-waiting ns, timeslices) of this process, None without SCHED_INFO."""
    try:
        with open(_SCHEDSTAT, "rb") as f:
            a, b, c = f.read().split()[:3]
        return int(a), int(b), int(c)
    except (OSError, ValueError):
        return None


def _multi_node() -> bool:
    return os.path.exists("/sys/devices/system/node/node1")


def _numa_pages() -> dict[str, int]:
    """Resident pages per node over this process's mappings (``N<node>=<pages>`` fields)."""
    pages: dict[str, int] = {}
    try:
        with open("/proc/self/numa_maps") as f:
            for line in f:
                for word in line.split()[2:]:
                    if word[:1] == "N" and "=" in word:
                        node, _, n = word[1:].partition("=")
                        if node.isdigit() and n.isdigit():
                            pages[node] = pages.get(node, 0) + int(n)
    except OSError:
        pass
    return pages


def _vmstat_migrated() -> int | None:
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("numa_pages_migrated "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _cpus(m: Any) -> list[int]:
    out = []
    for w in range(16):
        word = m.cpus[w]
        while word:
            low = word & -word
            cpu = w * 64 + low.bit_length() - 1
            if cpu <= MAX_CPU:
                out.append(cpu)
            word ^= low
    return out


def _bounded(v: Any) -> Any:
    """Extra metrics as JSON-mappable, bounded values (a custom callable's map is untrusted)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**64 else float(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        return v[-_MAX_EXTRA:]
    if isinstance(v, dict):
        return {str(k)[:64]: _bounded(x) for k, x in list(v.items())[:64]}
    if isinstance(v, (list, tuple)):
        return [_bounded(x) for x in list(v)[:64]]
    return str(v)[:256]


def error_report(kind: str, args: dict[str, Any], error: str) -> dict[str, Any]:
    """The report of a worker that could not measure at all (no segments)."""
    return {
        "cgroup": str(args.get("cgroup", ""))[:256],
        "pid": os.getpid(),
        "kind": kind,
        "index": int(args.get("index", 0)),
        "work_units": 0,
        "cpu_time_ns": 0,
        "max_gap_ms": 0.0,
        "error": error[:4096],
        "native": False,
    }


class Ctl:
    """One worker's meter and its clock (see the module docstring).

    :param kind: the work type's name (reported).
    :param args: the spawn arguments: ``cgroup``, ``index``, ``params``, ``duration_s``
        (absent: run until stopped), and ``watch``: ``(buffer, value)``, a shared u64 (a
        scenario's step counter) whose change ends the native loops at once, as ``stopped()``
        does between chunks.
    :param stopped: true once the worker was asked to stop (SIGTERM).
    :param step: the current step index, or None for a run without steps.
    :raises guest.native.NativeUnavailable: the native loops are missing.
    """

    def __init__(
        self,
        kind: str,
        args: dict[str, Any],
        stopped: Callable[[], bool],
        step: Callable[[], int] | None = None,
    ) -> None:
        self.ffi, self.lib = load()
        self.lib.sl_worker_setup()
        self.kind = kind
        self.args = args
        self.m = self.ffi.new("sl_meter *")
        self.stop_flag = self.ffi.new("int32_t *")  # for loops that take one; groups share theirs
        self.extra: dict[str, Any] = {}
        self.segments: list[dict[str, Any]] = []
        self._snap = self.ffi.new("sl_meter *")
        self._stopped = stopped
        self._step = step
        self.step = int(step()) if step else 0
        self._numa = _multi_node()
        self.lib.sl_meter_init(self.m)
        watch = args.get("watch")  # (a shared buffer holding a u64, its value now)
        self._watch: Any = None
        self._watch_val = 0
        if isinstance(watch, tuple) and len(watch) == 2:
            self._watch = self.ffi.cast("uint64_t *", self.ffi.from_buffer(watch[0]))
            self._watch_val = int(watch[1])
            self.lib.sl_meter_watch(self.m, self._watch, self._watch_val)
        now = self.lib.sl_now_ns()
        dur = args.get("duration_s")
        self.end_ns = now + int(float(dur) * 1e9) if dur is not None else 0
        self._begin(now)
        on_begin = args.get("on_begin")  # the scenario runner starts a hold's clock on it
        if callable(on_begin):
            on_begin()

    # -- what work types call -------------------------------------------------------------

    def running(self) -> bool:
        """False once stopped or past the duration; cuts a segment when the step changed."""
        now = self.lib.sl_now_ns()
        if now >= self._tl_next:
            self._sample(now)
        if self._stopped() or (self.end_ns and now >= self.end_ns):
            return False
        if self._step is not None:
            s = int(self._step())
            if s != self.step:
                if len(self.segments) < MAX_SEGMENTS - 1:  # else the last segment runs on
                    self.segments.append(self._cut(now))
                    self._begin(now)
                self.step = s
        return True

    def deadline(self, limit_ns: int = 0) -> int:
        """When the next native call must return: one chunk, the run's end or ``limit_ns``."""
        d = self.lib.sl_now_ns() + CHUNK_NS
        for end in (self.end_ns, limit_ns):
            if end and end < d:
                d = end
        return d

    def watch_changed(self) -> bool:
        """The watched word changed: this call ends for a step phase, not for good."""
        return self._watch is not None and int(self._watch[0]) != self._watch_val

    def check(self, rc: int) -> int:
        """A native return code: raise its errno when negative."""
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))
        return rc

    def unit(self, n: int = 1) -> None:
        """Count ``n`` work units and one iteration, and checkpoint (for Python-driven work)."""
        self.m.units += n
        self.m.iterations += 1
        self.lib.sl_checkpoint(self.m)

    def wake(self, latency_ns: int) -> None:
        """Record one wake latency."""
        self.lib.sl_wake(self.m, max(0, int(latency_ns)))

    def finish(self, error: str = "") -> dict[str, Any]:
        """The report: the last segment is cut now."""
        self.segments.append(self._cut(self.lib.sl_now_ns()))
        segs = self.segments
        return {
            "cgroup": str(self.args.get("cgroup", ""))[:256],
            "pid": os.getpid(),
            "kind": self.kind,
            "index": int(self.args.get("index", 0)),
            "work_units": sum(s["work_units"] for s in segs),
            "cpu_time_ns": sum(s["cpu_time_ns"] for s in segs),
            "max_gap_ms": max(s["max_gap_ns"] for s in segs) / 1e6,
            "error": error[:4096],
            "native": True,
            "segments": segs,
        }

    # -- segments -------------------------------------------------------------------------

    def _begin(self, now: int) -> None:
        self._start = now
        self._cpu0 = self.lib.sl_cpu_ns()
        self._sched0 = _schedstat()
        self._migr0 = _vmstat_migrated() if self._numa else None
        self._timeline = [[0, 0, 0]]
        self._tl_every = TIMELINE_NS
        self._tl_next = now + TIMELINE_NS

    def _sample(self, now: int) -> None:
        cpu = self.lib.sl_cpu_ns() - self._cpu0
        self._timeline.append([(now - self._start) // 1000, max(0, cpu) // 1000, self.m.units])
        if len(self._timeline) > MAX_TIMELINE:
            self._timeline = self._timeline[::2]  # keeps the first point; halves the density
            self._tl_every *= 2
        self._tl_next = now + self._tl_every

    def _cut(self, now: int) -> dict[str, Any]:
        lib, snap = self.lib, self._snap
        cpu = max(0, lib.sl_cpu_ns() - self._cpu0)
        lib.sl_meter_take(self.m, snap)
        wall = max(0, now - self._start)
        tl = self._timeline + [[wall // 1000, cpu // 1000, int(snap.units)]]
        if len(tl) > MAX_TIMELINE:  # the start and the end stay: drop the last sample before it
            tl = tl[:-2] + tl[-1:]
        seg: dict[str, Any] = {
            "step": self.step,
            "start_ns": self._start,
            "end_ns": now,
            "wall_time_ns": wall,
            "cpu_time_ns": cpu,
            "off_cpu_ns": max(0, wall - cpu),
            "work_units": int(snap.units),
            "iterations": int(snap.iterations),
            "migrations": int(snap.migrations),
            "cpus": _cpus(snap),
            "max_gap_ns": int(snap.max_gap_ns),
            "max_gap_cpu": max(-1, min(MAX_CPU, int(snap.max_gap_cpu))),
            "max_gap_at_ns": int(snap.max_gap_at_ns or self._start),
            "timeline": tl,
        }
        if snap.wake_n:
            n = int(snap.wake_n)
            mean = snap.wake_sum / n
            var = max(0.0, snap.wake_sumsq / n - mean * mean)
            seg["wake"] = {
                "n": n,
                "p50_ns": int(lib.sl_quantile(snap, 0.5)),
                "p99_ns": int(lib.sl_quantile(snap, 0.99)),
                "max_ns": int(snap.wake_max),
                "mean_ns": float(mean),
                "cv": math.sqrt(var) / mean if mean > 0 else 0.0,
            }
        st = _schedstat()
        if st is not None and self._sched0 is not None:
            seg["run_delay_ns"] = max(0, st[1] - self._sched0[1])
            seg["timeslices"] = max(0, st[2] - self._sched0[2])
        if self._numa:
            seg["numa_pages"] = _numa_pages()
            migrated = _vmstat_migrated()
            if migrated is not None and self._migr0 is not None:
                seg["numa_pages_migrated"] = max(0, migrated - self._migr0)
        if self.extra:
            seg["extra"] = _bounded(self.extra)
        return seg
