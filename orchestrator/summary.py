"""The compact end-of-run summary on the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ("render_summary",)

_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold yellow"}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.2f} s"


def _sched_ending(s: dict[str, Any]) -> str:
    """How the scheduler under test ended, in a few words."""
    e, stop = s.get("exit"), s.get("stop")
    if not s.get("attached"):
        first = (s.get("attach_message") or "").strip().splitlines()[:1]
        return f"did not attach ({s.get('attach_status')}){': ' + first[0][:100] if first else ''}"
    if e:
        words = ": ".join(x for x in (e.get("reason"), e.get("message")) if x) or "no reason"
        early = ""
        if s.get("stopped_early"):
            ms = s.get("exit_to_stop_ms")
            early = f"; VM stopped {ms:.0f} ms later" if ms is not None else "; VM stopped early"
        return f"exited during the test: {words}{early}"
    if stop:
        problems = "; ".join(stop.get("problems") or [])
        return f"stopped: {stop.get('status')}" + (f" ({problems})" if problems else "")
    return "no stop reported"


def _scheduler_table(s: dict[str, Any]) -> Table:
    t = Table(title="scheduler", title_justify="left", box=None, pad_edge=False)
    for col in ("name", "ops", "attach", "ended"):
        t.add_column(col, overflow="fold")
    ms = s.get("attach_ms")
    attach = f"{ms:.0f} ms" if s.get("attached") and ms is not None else "-"
    args = " ".join(s.get("args") or [])
    t.add_row(f"{s['name']} {args}".strip(), s.get("ops") or "-", attach, _sched_ending(s))
    return t


# per-CPU columns shown when the samples carry them: (sample key, heading)
_SCX_COLS = (("scx_nr_running", "scx nr"), ("local_dsq_nr", "local dsq"))


def _cpu_table(samples: list[dict[str, Any]]) -> Table:
    """Each CPU at the last sample, with how many times a task started running on it over
    the samples (schedstat ``pcount``), where the kernel keeps that count."""
    last = samples[-1]["cpus"]
    first = {c["cpu"]: c for c in samples[0]["cpus"]}
    scx = [(k, h) for k, h in _SCX_COLS if all(k in c for c in last)]
    runs = all("pcount" in c for c in last)
    t = Table(title="monitor (last sample)", title_justify="left", box=None, pad_edge=False)
    for col in ("cpu", "nr_running", "rq_clock", *(h for _, h in scx), *(["runs"] * runs)):
        t.add_column(col, justify="right")
    for c in last:
        row = [str(c["cpu"]), str(c["nr_running"]), f"{c['rq_clock'] / 1e9:.3f} s"]
        row += [str(c[k]) for k, _ in scx]
        if runs:
            row.append(f"{c['pcount'] - first.get(c['cpu'], {}).get('pcount', 0):,}")
        t.add_row(*row)
    return t


def _judged(checks: dict[str, Any]) -> str:
    n = checks.get("judged_samples")
    return f" ({n} judged)" if n and checks.get("status") != "not_applied" else ""


def render_summary(result: dict[str, Any], console: Console) -> None:
    workers = Table(title="workers", title_justify="left", box=None, pad_edge=False)
    for col in ("cgroup", "pid", "work units", "cpu time", "max gap"):
        workers.add_column(col, justify="right" if col != "cgroup" else "left")
    for w in result["workers"]:
        workers.add_row(
            str(w["cgroup"]),
            str(w["pid"]),
            f"{w['work_units']:,}",
            f"{(w['cpu_time_ns'] or 0) / 1e9:.2f} s",
            f"{w['max_gap_ms'] or 0:.1f} ms",
        )
    if result["workers"]:
        console.print(workers)
    samples = result["monitor"]["samples"]
    if samples:
        console.print(_cpu_table(samples))
    checks = result["monitor"].get("checks") or {}
    if checks.get("status") not in (None, "not_applied"):
        # the sched_ext thresholds: one line, the first violation's evidence in result.json
        console.print(f"monitor checks: {checks.get('reason', '')}", highlight=False)
    sched = result.get("scheduler") or {}
    if sched.get("origin", "eevdf") != "eevdf":
        console.print(_scheduler_table(sched))
    t = result["timings"]
    console.print(
        f"boot to SYS_RDY {_ms(t['vm_start_to_sys_rdy_ms'])}, test {_ms(t['test_ms'])}, "
        f"teardown {_ms(t['teardown_ms'])}, total {_ms(t['total_ms'])}; "
        f"{len(samples)} monitor samples{_judged(checks)}; engine {result['engine']}; kernel {result['kernel']['version']}; "
        f"scheduler {sched.get('name', 'eevdf')}",
        highlight=False,
    )
    verdict = result["verdict"]
    console.print(f"[{_STYLE[verdict]}]{verdict.upper()}[/]", highlight=False)
    for r in result["reasons"]:
        console.print(f"  - {r}", highlight=False, soft_wrap=True)
    for n in result.get("notes", []):
        console.print(f"  note: {n}", highlight=False, soft_wrap=True)
    for check in (result.get("workers_verdict") or {}).get("verdicts", []):
        for line in [] if check["passed"] else check.get("evidence", []):
            console.print(f"      {check['name']}: {line}", highlight=False, soft_wrap=True)
    console.print(f"run dir: {result['run_dir']}", highlight=False)
