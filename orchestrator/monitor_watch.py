"""Watch the run's monitor processes: their status, their restarts, and a crash loop.

A monitor that crashes as it starts (e.g. a vmlinux it cannot load) would be restarted by
supervisor forever, each time loading symbols on a 2-core host while the test runs; after
:data:`MAX_RESTARTS` the orchestrator stops it and the run reports it. The last status each
monitor answered is kept, so a monitor that sampled nothing can say why (its read errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import zmq

from schedlab_shared import run_layout
from schedlab_shared.bus import monitor as monitor_proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError

from .monitor_check import MonitorReport
from .supervise import Supervisor

__all__ = ("MAX_RESTARTS", "MonitorWatch", "monitor_name")

MAX_RESTARTS = 5
_POLL_S = 1.0
_STATUS_TIMEOUT_S = 0.3  # a restarting monitor must not stall the orchestrator's loop


def monitor_name(index: int) -> str:
    """Program name of the ``index``-th monitor (also its ``monitor-<name>.jsonl``)."""
    return "monitor" if index == 0 else f"monitor{index}"


class MonitorWatch:
    """Polls each monitor about once a second; :meth:`reports` gives what was learnt.

    :param ctls: the monitors' control endpoints, in index order.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        ctls: list[str],
        supervisor: Supervisor,
        run_dir: Path,
        progress: Callable[[str, str], None],
    ) -> None:
        self._supervisor = supervisor
        self._run_dir = run_dir
        self._progress = progress
        self._clients = {
            monitor_name(i): BusClient(ctx, ctl, timeout_s=_STATUS_TIMEOUT_S)
            for i, ctl in enumerate(ctls)
        }
        self._reports = {name: MonitorReport() for name in self._clients}
        self._next = 0.0

    def poll(self) -> None:
        """Ask each monitor for its status; stop one that crash-loops (rate limited)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + _POLL_S
        history = self._supervisor.history()
        for name, client in self._clients.items():
            rep = self._reports[name]
            if rep.gave_up:
                continue
            h = history.get(name)
            if h is not None and (h.restarts >= MAX_RESTARTS or h.gave_up):
                self._give_up(name, h.restarts)
                continue
            try:
                st = client.request(monitor_proto.MonitorStatus())
            except BusError:
                continue  # starting, restarting or gone: the next poll tries again
            rep.status = {
                "state": st.state,
                "samples": st.samples,
                "errors": st.errors,
                "last_error": st.last_error,
            }

    def _give_up(self, name: str, restarts: int) -> None:
        self._reports[name].gave_up = True
        self._progress("monitor", f"{name} restarted {restarts} times; stopping it")
        try:
            self._supervisor.stop_program(name)
        except Exception as exc:  # noqa: BLE001 - supervisord trouble is reported elsewhere
            self._progress("monitor", f"could not stop {name}: {exc}")

    def reports(self) -> dict[str, MonitorReport]:
        """Final reports: restart counts from supervisord's log, the last log line of a
        monitor that gave up (call after the processes stopped)."""
        history = self._supervisor.history()
        for name, rep in self._reports.items():
            h = history.get(name)
            if h is not None:
                rep.restarts = h.restarts
                rep.gave_up = rep.gave_up or h.gave_up
            if rep.gave_up:
                rep.last_log_line = _last_line(self._run_dir / run_layout.process_log(name))
        return self._reports

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _last_line(path: Path, max_bytes: int = 16 << 10) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - max_bytes))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""
