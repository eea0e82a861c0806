"""After a run with ``--store``: send what the collector could not forward live (the result,
the last process logs) to the remote store, by collector_proc's forwarder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rich.console import Console

__all__ = ("forward_rest",)

_TIMEOUT_S = 30.0


def forward_rest(run_dir: Path, run_id: str, store: str, console: Console) -> bool:
    """Forward the rest of ``run_dir``; a store that does not take it is a note, not a
    verdict (the run directory here is complete either way)."""
    argv = [sys.executable, "-m", "collector_proc.forward", "--run-dir", str(run_dir)]
    argv += ["--run-id", run_id, "--store", store, "--timeout", str(_TIMEOUT_S)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S + 30)
    except subprocess.TimeoutExpired:
        console.print(f"[yellow]store[/] {store}: no answer; the run stays in {run_dir}")
        return False
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["forwarding failed"])[-1]
        console.print(f"[yellow]store[/] {last}", highlight=False, markup=True)
        return False
    console.print(f"[bold]store[/] {store}: run {run_id} stored", highlight=False)
    return True
