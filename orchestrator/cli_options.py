"""Pieces every ``schedlab`` command shares: the error line, ``--version``, ``--progress``."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from click.shell_completion import CompletionItem

from schedlab_shared.exitcodes import RunExit

from .progress import MODES

__all__ = ("complete_kernel", "fail", "package_version", "progress_option", "version_option")


def fail(message: str) -> NoReturn:
    """One clear line on stderr, no traceback, exit 2."""
    click.echo(click.style("schedlab:", fg="red", bold=True) + f" {message}", err=True)
    sys.exit(RunExit.ERROR)


def package_version() -> str:
    """The installed ``schedlab`` distribution's version (from its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("schedlab")
    except PackageNotFoundError:
        return "unknown (the schedlab package is not installed)"


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"schedlab {package_version()}")
        ctx.exit(0)


version_option = click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Print the version and exit.",
)

progress_option = click.option(
    "--progress",
    type=click.Choice(MODES),
    default="auto",
    show_default=True,
    help="tty: a spinner; plain: timestamped lines; json: JSON lines on stdout; "
    "auto: tty on a terminal, else plain",
)


def complete_kernel(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Cached kernel versions, then files (``--kernel`` takes either)."""
    from .kernel.artifacts import list_cached

    versions = [
        CompletionItem(k.version) for k in list_cached() if k.version.startswith(incomplete)
    ]
    return versions + [CompletionItem(incomplete, type="file")]
