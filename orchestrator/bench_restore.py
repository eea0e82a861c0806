"""``schedlab bench restore``: boot-to-SYS_RDY against restore-to-ready on the KVM engine.

In one invocation, for one kernel and topology: ``--runs`` cold boots (the last one leaves
a snapshot at SYS_RDY in a private snapshot directory), then ``--runs`` runs restored from
that snapshot. Both figures are the run's own VM start to SYS_RDY (for a restored run, the
restore plus the replayed SYS_RDY reaching the collector); the restore alone is the VMM's
``start: restored ... in N ms`` note. Prints medians and the ratio; measures, never judges.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from schedlab_shared.exitcodes import RunExit
from schedlab_shared.topology import Topology

from .engine_choice import ENGINES

__all__ = ("restore_cmd",)

console = Console()
_RESTORED = re.compile(r"start: restored from a snapshot in ([0-9.]+) ms")


def _run(
    choice: Any, kernel: Any, initrd: Any, topology: str, duration: float, snaps: bool
) -> dict:
    from .request import RunRequest, Scenario, VmShape
    from .session import RunSession

    vm = VmShape(
        engine=choice.engine,
        engine_reason=choice.reason,
        kernel=kernel,
        initrd=initrd,
        topology=Topology.parse(topology),
    )
    req = RunRequest(vm=vm, scenario=Scenario(duration_s=duration), snapshots=snaps)
    result, _code = RunSession(req).run()
    return result


def _row(result: dict) -> dict[str, Any]:
    restored = [float(m.group(1)) for n in result["notes"] if (m := _RESTORED.match(str(n)))]
    return {
        "verdict": result["verdict"],
        "ready_ms": result["timings"].get("vm_start_to_sys_rdy_ms"),
        "restore_ms": restored[0] if restored else None,
    }


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


@click.command("restore")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 50))
@click.option("--engine", default="kvm", show_default=True, type=click.Choice(ENGINES))
@click.option("--kernel", "kernel_spec", default=None)
@click.option("--topology", default="1,1,2,1", show_default=True)
@click.option("--duration", default=1.0, show_default=True, type=float)
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def restore_cmd(
    runs: int, engine: str, kernel_spec: str | None, topology: str, duration: float, as_json: bool
) -> None:
    """Median boot-to-SYS_RDY of RUNS cold boots against RUNS restores from a snapshot."""
    from .engine_choice import EngineChoiceError, choose_engine
    from .runner import prepare_inputs
    from .snapshot_cache import ROOT_ENV

    try:
        choice = choose_engine(engine)
    except EngineChoiceError as exc:
        click.echo(f"schedlab: {exc}", err=True)
        sys.exit(RunExit.ERROR)
    if choice.engine != "kvm":
        click.echo(f"schedlab: bench restore needs the KVM engine ({choice.reason})", err=True)
        sys.exit(RunExit.ERROR)
    kernel, initrd = prepare_inputs(choice, kernel_spec, lambda p, d: None)
    snaps = Path(tempfile.mkdtemp(prefix="schedlab-bench-snapshots-"))
    saved = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = str(snaps)
    boots: list[dict] = []
    restores: list[dict] = []
    try:
        for i in range(runs):
            boots.append(_row(_run(choice, kernel, initrd, topology, duration, i == runs - 1)))
            console.print(f"boot {i + 1}/{runs}: {boots[-1]}", highlight=False)
        for i in range(runs):
            restores.append(_row(_run(choice, kernel, initrd, topology, duration, True)))
            console.print(f"restore {i + 1}/{runs}: {restores[-1]}", highlight=False)
    finally:
        if saved is None:
            os.environ.pop(ROOT_ENV, None)
        else:
            os.environ[ROOT_ENV] = saved
        shutil.rmtree(snaps, ignore_errors=True)
    boot, ready = _median(boots, "ready_ms"), _median(restores, "ready_ms")
    figures = {
        "engine": choice.engine,
        "topology": topology,
        "runs": runs,
        "boot_to_sys_rdy_ms": boot,
        "restore_to_ready_ms": ready,
        "restore_only_ms": _median(restores, "restore_ms"),
        "ratio": (ready / boot) if boot and ready is not None else None,
        "restored_runs": sum(r["restore_ms"] is not None for r in restores),
        "boots": boots,
        "restores": restores,
    }
    if as_json:
        json.dump(figures, sys.stdout)
        print()
        return
    ratio = figures["ratio"]
    console.print(
        f"boot to SYS_RDY {boot if boot is None else f'{boot:.1f}'} ms (median of {runs}), "
        f"restore to ready {ready if ready is None else f'{ready:.1f}'} ms (median, "
        f"{figures['restored_runs']} of {runs} restored; the restore itself "
        f"{figures['restore_only_ms']} ms); ratio {'n/a' if ratio is None else f'{ratio:.3f}'}",
        highlight=False,
    )
