"""The sched_ext watchdog override: the host shortens the attached scheduler's timeout.

A stall test need not wait out the scheduler's own 5-30 s: once a scheduler is attached the
monitor writes ``requested_s * HZ`` jiffies where this kernel keeps the timeout
(``scx_sched.watchdog_timeout`` from v7.1, the static ``scx_watchdog_timeout`` before) and
reads it back. Two more kernel variables keep a healthy scheduler alive under a shorter
timeout (:linux:`kernel/sched/ext.c`, ``scx_watchdog_workfn`` and ``scx_tick``):

* ``scx_watchdog_interval`` (v7.1+) spaces the watchdog's checks, half the timeout at
  enable; it is lowered to half the new timeout, or the checks stay too far apart;
* ``scx_tick`` fails the scheduler when the watchdog has not checked in for a timeout.
  The check already queued runs at the old interval, so until it has run (its
  ``scx_watchdog_timestamp`` moves) the monitor keeps that timestamp current, and stops
  after one old interval plus the new timeout in any case: a watchdog starved for longer is
  a real stall.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from monitor_proc.helpers.ext import scx_root, scx_watchdog_target
from monitor_proc.memory import FaultError
from monitor_proc.program import Program
from monitor_proc.symbols import SymbolNotFound

__all__ = ("WatchdogOverride",)

log = logging.getLogger(__name__)
_U64 = struct.Struct("<Q")


class WatchdogOverride:
    """Apply the override to each scheduler that attaches; :meth:`step` runs every sample.

    :param requested_s: the timeout asked for, seconds.
    :param hz: the guest kernel's CONFIG_HZ.
    """

    def __init__(self, requested_s: float, hz: int) -> None:
        if not requested_s > 0 or hz <= 0:
            raise ValueError(f"watchdog timeout {requested_s!r} s at HZ {hz!r}: both must be > 0")
        self.requested_s = requested_s
        self.hz = hz
        self.jiffies = max(1, round(requested_s * hz))
        self.observation: dict[str, Any] | None = None
        self._applied_to: int | None = None  # scx_sched address (1: the pre-6.16 globals)
        self._guard: tuple[int, int, int] | None = None  # (&timestamp, its value, deadline)

    def step(self, prog: Program, scx: dict[str, Any] | None, elapsed_ms: float) -> dict[str, Any]:
        """Apply, guard or do nothing; returns ``{"watchdog": observation}`` for the sample
        in which the override was applied, else ``{}``."""
        if scx is None:
            self._applied_to, self._guard = None, None  # detached: the next attach is new
            return {}
        if self._guard is not None:
            self._keep_checked_in(prog)
        sch = scx_root(prog) or 1
        if sch == self._applied_to:
            return {}
        self._applied_to = sch
        try:
            obs = self._apply(prog, sch if sch != 1 else 0)
        except (FaultError, PermissionError, SymbolNotFound) as exc:
            obs = {"error": f"{type(exc).__name__}: {exc}"}
        obs = {
            "requested_s": self.requested_s,
            "requested": self.jiffies,
            "hz": self.hz,
            **obs,
            "at_ms": round(elapsed_ms, 1),
        }
        self.observation = obs
        log.info("watchdog override: %s", obs)
        return {"watchdog": obs}

    def _read(self, prog: Program, addr: int) -> int:
        return _U64.unpack(prog.read(addr, 8))[0]

    def _write(self, prog: Program, addr: int, value: int) -> None:
        prog.write(addr, _U64.pack(value))

    def _symbol(self, prog: Program, name: str) -> int | None:
        try:
            return prog.symbol(name)
        except SymbolNotFound:
            return None

    def _apply(self, prog: Program, sch: int) -> dict[str, Any]:
        target = scx_watchdog_target(prog, sch)
        if target is None:
            return {
                "error": "this kernel keeps no sched_ext watchdog timeout "
                "(neither scx_sched.watchdog_timeout nor scx_watchdog_timeout)"
            }
        addr, what = target
        previous = self._read(prog, addr)
        out: dict[str, Any] = {"target": what, "previous": previous}
        old_interval = previous // 2  # before v7.1 the check re-arms at timeout / 2
        interval_sym = self._symbol(prog, "scx_watchdog_interval")
        if interval_sym is not None:
            old_interval = self._read(prog, interval_sym)
            new_interval = max(1, self.jiffies // 2)
            if new_interval < old_interval:
                self._write(prog, interval_sym, new_interval)
                out["interval"] = new_interval
        ts_sym, jiffies_sym = (
            self._symbol(prog, "scx_watchdog_timestamp"),
            self._symbol(prog, "jiffies"),
        )
        if self.jiffies < old_interval and ts_sym is not None and jiffies_sym is not None:
            ts = self._read(prog, ts_sym)
            self._guard = (ts_sym, ts, ts + old_interval + self.jiffies)
        self._write(prog, addr, self.jiffies)
        out["read_back"] = self._read(prog, addr)
        out["read_back_s"] = round(out["read_back"] / self.hz, 3)
        return out

    def _keep_checked_in(self, prog: Program) -> None:
        """Until the kernel's watchdog has run once at the new interval, move its timestamp
        to now so ``scx_tick`` does not take the old interval for a starved watchdog."""
        assert self._guard is not None
        ts_sym, written, deadline = self._guard
        try:
            now = self._read(prog, prog.symbol("jiffies"))
            ts = self._read(prog, ts_sym)
            if ts != written or now > deadline:  # the watchdog ran by itself, or ran out of time
                self._guard = None
                return
            self._write(prog, ts_sym, now)
            self._guard = (ts_sym, now, deadline)
        except (FaultError, PermissionError, SymbolNotFound) as exc:
            log.warning("watchdog timestamp guard: %s", exc)
            self._guard = None
