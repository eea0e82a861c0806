"""``schedlab scheduler``: build the example schedulers for a kernel, list them.

Registered in :mod:`orchestrator.cli` with ``cli.add_command(scheduler_group, "scheduler")``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from orchestrator.kernel.artifacts import KernelArtifacts, KernelError
from orchestrator.kernel.resolve import resolve_kernel
from orchestrator.scheduler.cache import BuildCache, ensure_built, list_built, load_built
from orchestrator.scheduler.errors import SchedulerError
from orchestrator.scheduler.examples import EXAMPLES
from schedlab_shared.exitcodes import RunExit

__all__ = ("scheduler_group",)

_err = Console(stderr=True)


def _fail(message: str) -> None:
    # soft_wrap: one line even when stderr is not a terminal (rich would wrap at 80 columns)
    _err.print(f"[bold red]schedlab:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(RunExit.ERROR)


def _say(message: str) -> None:
    _err.print(message, style="dim", highlight=False, soft_wrap=True, markup=False)


def _kernel(spec: str | None) -> KernelArtifacts:
    try:
        return resolve_kernel(spec, progress=lambda s, d: _say(f"kernel {s}: {d}"))
    except KernelError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


@click.group("scheduler")
def scheduler_group() -> None:
    """Build and list the sched_ext schedulers schedlab can run."""


@scheduler_group.command("build")
@click.option(
    "--kernel",
    "kernel_spec",
    default=None,
    help="cached version or image path (default: the default kernel)",
)
@click.option("--force", is_flag=True, help="rebuild even when the cache is valid")
@click.option("--timing", is_flag=True, help="print how long each phase took")
def build_cmd(kernel_spec: str | None, force: bool, timing: bool) -> None:
    """Build the kernel's example schedulers against KERNEL's BTF (cached; built once)."""
    start = time.monotonic()
    kernel = _kernel(kernel_spec)
    try:
        built = ensure_built(kernel, force=force, progress=_say)
    except SchedulerError as exc:
        _fail(str(exc))
        return
    word = "cached" if built.hit else "built"
    click.echo(f"{word} {len(built.schedulers)} schedulers for {built.kernel} in {built.root}")
    if timing:
        phases = built.manifest.get("timings_s", {}) if not built.hit else {}
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
        took = f"{built.seconds * 1000:.2f} ms" if built.hit else f"{built.seconds:.1f} s"
        click.echo(
            f"timing: {'cache hit' if built.hit else 'cold build'} {took}"
            + (f" ({parts})" if parts else "")
            + f"; command {time.monotonic() - start:.2f} s after start-up"
        )


def _rows(caches: list[BuildCache]) -> list[dict[str, Any]]:
    rows = []
    for cache in caches:
        for name, s in cache.schedulers.items():
            d = EXAMPLES.get(name)
            rows.append(
                {
                    "name": name,
                    "ops": s.ops,
                    "kernel": cache.kernel,
                    "path": str(s.path),
                    "usage_from": s.usage_from,
                    "synopsis": s.usage.synopsis,
                    "options": [o.to_dict() for o in s.usage.options],
                    "flags": [
                        {"name": f.name, "args": list(f.args), "requires": list(f.requires)}
                        for f in d.flags
                    ]
                    if d
                    else [],
                    "watchdog_timeout_s": d.watchdog_timeout_s if d else None,
                }
            )
    return rows


def _option_text(opt: dict[str, Any]) -> str:
    flag = opt["short"] or opt["long"]
    return f"{flag} {opt['arg']}" if opt["arg"] else flag


@scheduler_group.command("list")
@click.option(
    "--kernel",
    "kernel_spec",
    default=None,
    help="only this kernel's build (default: every cached build)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON (one object per scheduler)")
def list_cmd(kernel_spec: str | None, as_json: bool) -> None:
    """List the built schedulers: name, sched_ext ops, the options -h prints, the kernel."""
    if kernel_spec is not None:
        found = load_built(_kernel(kernel_spec))
        caches = [found] if found else []
    else:
        caches = list_built()
    rows = _rows(caches)
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        click.echo()
        return
    if not rows:
        click.echo(
            "no scheduler built yet; run `schedlab scheduler build` "
            "(`schedlab run --scheduler NAME` builds on first use)"
        )
        return
    table = Table(title="built schedulers (plus `eevdf`: no sched_ext scheduler)")
    for col in ("name", "ops", "kernel"):
        table.add_column(col, no_wrap=True)
    table.add_column("options (-h)", overflow="fold")
    for r in rows:
        opts = " ".join(_option_text(o) for o in r["options"] if o["short"] != "-h")
        table.add_row(r["name"], r["ops"] or "?", r["kernel"], opts)
    Console().print(table)
