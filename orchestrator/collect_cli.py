"""``schedlab collect --listen ADDR --store DIR``: the remote run store other hosts' runs
forward their logs to (CURVE-authenticated; the store itself is collector_proc's)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

__all__ = ("collect_cmd",)


@click.command("collect", short_help="Store the run logs other hosts' runs forward (CURVE).")
@click.option("--listen", required=True, help="endpoint to bind, e.g. tcp://0.0.0.0:5601")
@click.option("--store", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--allow",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="allow-list: a directory of <host>.key public keys (default ~/.config/schedlab/allowed)",
)
def collect_cmd(listen: str, store: Path, allow: Path | None) -> None:
    """Serve until interrupted. Runs started with 'schedlab run --store ADDR' on other hosts
    send their run directories here, into DIR/<host>/<run id>/, each file resumed from where
    the store stands after a reconnect or a restart of either side. Keys: the store's pair
    is ~/.config/schedlab/curve/store.key[_secret] (made on first use; give hosts its public
    half), each host's is curve/<host>.key (copy it into the allow-list to let it in)."""
    argv = [sys.executable, "-m", "collector_proc.store_server", "--listen", listen]
    argv += ["--store", str(store)]
    if allow is not None:
        argv += ["--allow", str(allow)]
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # the store is its own process: signals go straight to it
