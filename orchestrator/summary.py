"""The compact end-of-run summary on the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ("render_summary",)

_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold yellow"}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.2f} s"


def render_summary(result: dict[str, Any], console: Console) -> None:
    workers = Table(title="workers", title_justify="left", box=None, pad_edge=False)
    for col in ("cgroup", "pid", "work units", "cpu time", "max gap"):
        workers.add_column(col, justify="right" if col != "cgroup" else "left")
    for w in result["workers"]:
        workers.add_row(
            str(w["cgroup"]), str(w["pid"]), f"{w['work_units']:,}",
            f"{(w['cpu_time_ns'] or 0) / 1e9:.2f} s", f"{w['max_gap_ms'] or 0:.1f} ms",
        )
    if result["workers"]:
        console.print(workers)
    samples = result["monitor"]["samples"]
    if samples:
        cpus = Table(title="monitor (last sample)", title_justify="left", box=None, pad_edge=False)
        for col in ("cpu", "nr_running", "rq_clock"):
            cpus.add_column(col, justify="right")
        for c in samples[-1]["cpus"]:
            cpus.add_row(str(c["cpu"]), str(c["nr_running"]), f"{c['rq_clock'] / 1e9:.3f} s")
        console.print(cpus)
    t = result["timings"]
    console.print(
        f"boot to SYS_RDY {_ms(t['vm_start_to_sys_rdy_ms'])}, test {_ms(t['test_ms'])}, "
        f"teardown {_ms(t['teardown_ms'])}, total {_ms(t['total_ms'])}; "
        f"{len(samples)} monitor samples; engine {result['engine']}; kernel {result['kernel']['version']}",
        highlight=False,
    )
    verdict = result["verdict"]
    console.print(f"[{_STYLE[verdict]}]{verdict.upper()}[/]", highlight=False)
    for r in result["reasons"]:
        console.print(f"  - {r}", highlight=False)
    console.print(f"run dir: {result['run_dir']}", highlight=False)
