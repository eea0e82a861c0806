"""``schedlab bench gauntlet``: a fixed gauntlet slice, serial and with ``-n N`` (pytest-xdist),
wall time and ratio. A figure, never pass/fail (exit 1 only if a variant failed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import click

from schedlab_shared.exitcodes import RunExit

__all__ = ("gauntlet_cmd",)

_SLICE = """
import schedlab_test as sl

@sl.vm(scheduler="{sched}", gauntlet_flags={flags!r}, presets={presets!r}, duration={duration})
def test_bench(ctx):
    return ctx.steady()
"""


def _plugin_args() -> list[str]:
    from importlib.metadata import entry_points

    installed = any(ep.value == "schedlab_test.plugin" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "schedlab_test.plugin"]


def _run(workdir: Path, workers: int, slots: int) -> tuple[float, int, int]:
    junit = workdir / f"junit-{workers}.xml"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *_plugin_args(),
        "-p",
        "no:cacheprovider",
        "-q",
        "test_bench.py",
        "--gauntlet",
        f"--junitxml={junit}",
        f"--vm-slots={slots}",
        f"--schedlab-out={workdir / f'out-{workers}'}",
    ]
    if workers > 1:
        argv += ["-n", str(workers)]
    t0 = time.monotonic()
    subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
    wall = time.monotonic() - t0
    cases = list(ET.parse(junit).getroot().iter("testcase")) if junit.exists() else []
    failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    return wall, len(cases), failed


@click.command("gauntlet")
@click.option("--scheduler", "sched", default="scx_qmap", show_default=True)
@click.option("--flags", default="batch", show_default=True, help="flags whose power set is taken")
@click.option("--presets", default="tiny-1llc,tiny-2llc", show_default=True)
@click.option("--duration", default=1.0, show_default=True, type=float)
@click.option("-n", "workers", default=2, show_default=True, type=click.IntRange(2, 16))
@click.option(
    "--slots",
    default=8,
    show_default=True,
    type=int,
    help="--vm-slots: host CPU slots the VMs share (oversubscription is the user's call)",
)
@click.option("--json", "as_json", is_flag=True, help="the figures as JSON on stdout")
def gauntlet_cmd(
    sched: str, flags: str, presets: str, duration: float, workers: int, slots: int, as_json: bool
) -> None:
    """Wall time of a gauntlet slice run serially, then with -n N, and the ratio."""
    fl = [f for f in flags.split(",") if f]
    ps = [p for p in presets.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="schedlab-bench-gauntlet-") as tmp:
        work = Path(tmp)
        (work / "test_bench.py").write_text(
            _SLICE.format(sched=sched, flags=fl, presets=ps, duration=duration)
        )
        serial = _run(work, 1, slots)
        parallel = _run(work, workers, slots)
    fig = {
        "variants": serial[1],
        "serial_s": round(serial[0], 1),
        "parallel_s": round(parallel[0], 1),
        "workers": workers,
        "slots": slots,
        "ratio": round(serial[0] / parallel[0], 2) if parallel[0] else None,
        "failed": serial[2] + parallel[2],
    }
    if as_json:
        click.echo(json.dumps(fig))
    else:
        click.echo(
            f"gauntlet slice {sched} {'+'.join(fl) or 'no flags'} over {', '.join(ps)}: "
            f"{fig['variants']} variants; serial {fig['serial_s']} s, -n {workers} "
            f"{fig['parallel_s']} s, ratio {fig['ratio']}x ({slots} CPU slots)"
            + (f"; {fig['failed']} variant runs failed" if fig["failed"] else "")
        )
    if fig["failed"] or not fig["variants"]:
        sys.exit(RunExit.FAILED)
