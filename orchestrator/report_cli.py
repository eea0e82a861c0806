"""``schedlab report PATH``: a self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from schedlab_results.report import ReportError, write_report

from .cli_options import fail

__all__ = ("report_cmd",)


@click.command("report", short_help="Write a self-contained HTML report of runs.")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="the HTML file to write")
def report_cmd(path: Path, out: Path | None) -> None:
    """PATH is a run directory (per-CPU timelines, workers, verdict, scheduler log), a
    directory of runs or sidecars (a preset x profile matrix, each run with its own report)
    or a comparison saved by 'schedlab compare --json'. The page loads nothing from
    outside itself."""
    try:
        written = write_report(path, out)
    except ReportError as e:
        fail(str(e))
    click.echo(str(written[0]))
    if len(written) > 1:
        click.echo(f"and {len(written) - 1} run report(s) beside their runs", err=True)
