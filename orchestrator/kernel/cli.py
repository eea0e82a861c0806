"""``schedlab kernel``: fetch and list the kernels schedlab boots.

Registered by the lead in :mod:`orchestrator.cli` with ``main.add_command(kernel_group)``.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from orchestrator.cli_options import progress_option
from orchestrator.kernel.artifacts import KernelArtifacts, KernelError, list_cached
from orchestrator.kernel.fetch import DEFAULT_SUITE, SUITES, fetch_default
from orchestrator.progress import make_reporter
from schedlab_shared.exitcodes import RunExit

__all__ = ("kernel_group",)


@click.group("kernel")
def kernel_group() -> None:
    """Download and inspect the kernels schedlab boots."""


def _flag(kernel: KernelArtifacts, name: str) -> str:
    if not kernel.config_known:
        return "?"
    return "[green]yes[/]" if kernel.enabled(name) else "[red]no[/]"


def _size(kernel: KernelArtifacts) -> str:
    return f"{kernel.vmlinuz.stat().st_size / 2**20:.1f} MiB"


@kernel_group.command("fetch")
@click.option(
    "--refresh",
    is_flag=True,
    help="Re-read the suite's package lists and fetch a newer kernel if it moved.",
)
@click.option(
    "--suite",
    default=DEFAULT_SUITE,
    show_default=True,
    type=click.Choice(SUITES),
    help="Debian suite: sid (7.x, sched_ext) or trixie (6.12, no sched_ext)",
)
@progress_option
def fetch_cmd(refresh: bool, suite: str, progress: str) -> None:
    """Download Debian sid's cloud kernel (with sched_ext), or another suite's, into the cache."""
    console = Console(stderr=True)
    try:
        with make_reporter(progress, console) as report:
            kernel = fetch_default(progress=report, refresh=refresh, suite=suite)
    except (KernelError, OSError) as exc:
        # Not a verdict: nothing was tested, so this is exit 2 like every setup failure.
        what = str(exc) if isinstance(exc, KernelError) else f"kernel fetch failed: {exc}"
        console.print(f"[bold red]schedlab:[/] {what}", highlight=False, soft_wrap=True)
        sys.exit(RunExit.ERROR)
    click.echo(f"{kernel.version}\t{kernel.root}")


@kernel_group.command("list")
def list_cmd() -> None:
    """List cached kernels."""
    kernels = list_cached()
    if not kernels:
        click.echo("no cached kernel; run `schedlab kernel fetch`")
        return
    table = Table(title="cached kernels")
    table.add_column("version", no_wrap=True)
    for col in ("sched_ext", "BTF", "HZ", "size"):
        table.add_column(col, no_wrap=True)
    table.add_column("path", overflow="fold")
    for k in kernels:
        table.add_row(
            k.version,
            _flag(k, "SCHED_CLASS_EXT"),
            _flag(k, "DEBUG_INFO_BTF"),
            str(k.hz or "?"),
            _size(k),
            str(k.root),
        )
    Console().print(table)
