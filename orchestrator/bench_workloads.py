"""``schedlab bench workloads``: the native work loops against the same loops in Python, and
the guest's cost from SYS_RDY to its first worker running.

The loops are measured in their own process (``python -m guest.bench_loops``: the guest's
code on the host's interpreter, which is the guest's); the guest's cost comes from short
runs: the guest's CLOCK_BOOTTIME at SYS_RDY (its frame's ``boot_ns``) and at the first work
type's meter start (the step record's ``t0_ns``), so host load between them does not count.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from schedlab_shared import run_layout
from schedlab_shared.exitcodes import RunExit
from schedlab_shared.topology import Topology

from .engine_choice import ENGINES

__all__ = ("first_worker_ms", "workloads_cmd")

console = Console()


def _loops(seconds: float) -> dict[str, Any]:
    from .native.build import build_native

    native = str(build_native().parent)
    here = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, native])}
    argv = [sys.executable, "-m", "guest.bench_loops", "--seconds", str(seconds)]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=600)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise click.ClickException(f"the loop benchmark failed (exit {out.returncode}): {last}")
    return dict(json.loads(out.stdout))


def first_worker_ms(result: dict[str, Any]) -> dict[str, float] | None:
    """Guest milliseconds from SYS_RDY to the first worker's meter start (and to the init's
    main), from a run's result and its messages; None when either is missing."""
    run_dir = Path(result.get("run_dir", ""))
    rdy = None
    try:
        with open(run_dir / run_layout.MESSAGES) as f:
            for line in f:
                m = json.loads(line)
                if m.get("type") == "SYS_RDY":
                    rdy = m.get("payload") or {}
                    break
    except (OSError, ValueError):
        return None
    steps = ((result.get("guest") or {}).get("result") or {}).get("steps") or []
    starts = [
        w.get("t0_ns", w.get("start_ns"))
        for st in steps[:1]
        for w in st.get("workers", [])
        if isinstance(w.get("t0_ns", w.get("start_ns")), int)
    ]
    if not rdy or not isinstance(rdy.get("boot_ns"), int) or not starts:
        return None
    out = {"sys_rdy_to_first_worker_ms": (min(starts) - rdy["boot_ns"]) / 1e6}
    if isinstance(rdy.get("main_ns"), int):
        out["init_main_to_sys_rdy_ms"] = (rdy["boot_ns"] - rdy["main_ns"]) / 1e6
    return out


def _guest_costs(runs: int, engine: str, kernel_spec: str | None) -> list[dict[str, float]]:
    from .engine_choice import choose_engine
    from .request import RunRequest, Scenario, VmShape
    from .runner import prepare_inputs
    from .session import RunSession

    choice = choose_engine(engine)
    kernel, initrd = prepare_inputs(choice, kernel_spec, lambda p, d: None)
    rows = []
    for i in range(runs):
        vm = VmShape(
            engine=choice.engine,
            engine_reason=choice.reason,
            kernel=kernel,
            initrd=initrd,
            topology=Topology.parse("1,1,2,1"),
            qemu_accel=choice.qemu_accel,
        )
        result, _code = RunSession(RunRequest(vm=vm, scenario=Scenario(duration_s=1.0))).run()
        fig = first_worker_ms(result)
        console.print(f"run {i + 1}/{runs}: {result['verdict']}, {fig}", highlight=False)
        if fig is not None:
            rows.append(fig)
    return rows


def _line(name: str, fig: dict[str, Any]) -> str:
    def us(key: str) -> str:
        return f"{fig[key] / 1000:.1f}" if key in fig else "-"

    if "p50_ns" in fig:
        return (
            f"{name:7s} p50 {us('p50_ns'):>8s} us  p99 {us('p99_ns'):>8s} us  {fig['per_s']:.0f}/s"
        )
    return f"{name:7s} mean {us('mean_ns'):>7s} us  max {us('max_ns'):>8s} us  {fig['per_s']:.0f}/s"


@click.command("workloads")
@click.option("--seconds", default=1.0, show_default=True, type=click.FloatRange(0.1, 60))
@click.option("--runs", default=2, show_default=True, type=click.IntRange(0, 20),
              help="short VM runs for the guest's cost (0: loops only)")  # fmt: skip
@click.option("--engine", default="qemu", show_default=True, type=click.Choice(ENGINES))
@click.option("--kernel", "kernel_spec", default=None)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def workloads_cmd(
    seconds: float, runs: int, engine: str, kernel_spec: str | None, as_json: bool
) -> None:
    """Native work loops vs the same loops in Python (pipe and timer wake latency, checkpoint
    resolution), and the guest's SYS_RDY-to-first-worker cost over RUNS short runs."""
    loops = _loops(seconds)
    costs = _guest_costs(runs, engine, kernel_spec) if runs else []
    med = {k: statistics.median(r[k] for r in costs) for k in (costs[0] if costs else {})}
    if as_json:
        json.dump({"loops": loops, "guest": {"runs": costs, "median": med}}, sys.stdout)
        print()
        return
    for what in ("pipe_wake", "timer_wake", "checkpoint"):
        console.print(f"[bold]{what}[/]", highlight=False)
        for side in ("native", "python"):
            console.print("  " + _line(side, loops[what][side]), highlight=False)
    for k, v in med.items():
        console.print(f"guest {k}: median {v:.1f} ms over {len(costs)} runs", highlight=False)
    if runs and not costs:
        console.print("guest: no run gave both SYS_RDY and a worker start", highlight=False)
        sys.exit(RunExit.ERROR)
