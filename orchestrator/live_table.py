"""The live per-CPU table of ``schedlab attach RUN_DIR top`` (and ``monitor --live``).

It follows the run's primary monitor on its PUB socket (``vm.<id>.monitor.sample``) and
redraws with ``rich.live.Live``: per CPU nr_running, sched_ext's nr_running, local DSQ depth
and rq_clock progress; under it the scheduler, its DSQs and each event counter's rate.
"""

from __future__ import annotations

import time
from typing import Any

import zmq
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from schedlab_shared.bus import monitor as monitor_proto
from schedlab_shared.bus import topics
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient, recv_event, subscriber
from schedlab_shared.bus.codec import BusError, to_body
from schedlab_shared.bus.vmm import VmState
from schedlab_shared.monitor_schema import SchemaError, check_sample

__all__ = ("follow", "render")

_DASH = "-"


def _delta(now: dict[str, Any], prev: dict[str, Any] | None, key: str) -> str:
    if prev is None or key not in now or key not in prev:
        return _DASH
    return f"+{now[key] - prev[key]:,}"


def render(sample: dict[str, Any], prev: dict[str, Any] | None = None) -> Group:
    """The table for one sample (rates against ``prev``, the one before it)."""
    t = Table(
        title=f"{sample.get('monitor', 'monitor')} at {sample['elapsed_ms'] / 1000:.1f} s",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    for col in ("cpu", "nr_running", "scx nr", "local DSQ", "rq_clock", "curr"):
        t.add_column(col, justify="left" if col == "curr" else "right")
    before = {c["cpu"]: c for c in (prev or {}).get("cpus", [])}
    for c in sample["cpus"]:
        t.add_row(
            str(c["cpu"]),
            str(c["nr_running"]),
            str(c.get("scx_nr_running", _DASH)),
            str(c.get("local_dsq_nr", _DASH)),
            _delta(c, before.get(c["cpu"]), "rq_clock"),
            f"{c.get('curr_comm', '')}[{c.get('curr_pid', '')}]" if "curr_pid" in c else "",
        )
    parts: list[Any] = [t]
    scx = sample.get("scx")
    if scx is None:
        parts.append(Text("no sched_ext scheduler attached", style="dim"))
        return Group(*parts)
    head = f"sched_ext: {scx.get('ops', '?')}"
    if "watchdog_timeout" in scx:
        head += f", watchdog {scx['watchdog_timeout']} jiffies"
    if scx.get("exit_kind"):
        head += f", exiting (kind {scx['exit_kind']})"
    dsqs = scx.get("dsqs", [])
    if dsqs:
        head += "; DSQs " + ", ".join(f"{q['id']:#x}:{q['nr']}" for q in dsqs[:8])
    parts.append(Text(head))
    ev, pev = scx.get("events", {}), ((prev or {}).get("scx") or {}).get("events", {})
    dt = (sample["elapsed_ms"] - prev["elapsed_ms"]) / 1000 if prev else 0.0
    if ev:
        et = Table(box=None, pad_edge=False)
        et.add_column("event")
        et.add_column("total", justify="right")
        et.add_column("per s", justify="right")
        for name, total in ev.items():
            rate = f"{(total - pev[name]) / dt:,.0f}" if dt > 0 and name in pev else _DASH
            et.add_row(name.removeprefix("SCX_EV_"), f"{total:,}", rate)
        parts.append(et)
    return Group(*parts)


def follow(vm_id: str, vmm_ctl: str, monitor_pub: str, max_s: float = 0.0) -> int:
    """Draw the table until the VM exits (or ``max_s`` seconds, if set); returns samples shown."""
    ctx = zmq.Context()
    sub = subscriber(ctx, monitor_pub, topics.monitor_sample(vm_id))
    vmm = BusClient(ctx, vmm_ctl, timeout_s=2.0)
    shown, prev, next_check = 0, None, 0.0
    started = time.monotonic()
    try:
        with Live(
            Text("waiting for the monitor's first sample...", style="dim"), auto_refresh=False
        ) as live:
            while not max_s or time.monotonic() - started < max_s:
                if sub.poll(200):
                    _topic, msg = recv_event(sub, monitor_proto.Sample)
                    body = {k: v for k, v in to_body(msg).items() if v is not None}
                    try:
                        sample = check_sample(body)
                    except SchemaError:
                        continue
                    live.update(render(sample, prev), refresh=True)
                    prev, shown = sample, shown + 1
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + 1.0
                    try:
                        if vmm.request(vmm_proto.Status_()).state == VmState.EXITED:
                            break
                    except BusError:
                        break  # the VMM is gone: so is the run
    finally:
        sub.close(0)
        vmm.close()
        ctx.term()
    return shown
