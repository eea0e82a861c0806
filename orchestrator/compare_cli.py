"""``schedlab compare A B``: significant metric changes between two sets of runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from schedlab_results import compare_doc, sidecar
from schedlab_results.compare import compare
from schedlab_results.policy import PolicyError, gates
from schedlab_shared.exitcodes import RunExit

from .cli_options import fail

__all__ = ("compare_cmd",)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="significant changes (B against A)", title_justify="left", box=None)
    for col in ("identity", "metric", "A", "B", "delta", "%", "direction"):
        t.add_column(col, justify="right" if col in ("A", "B", "delta", "%") else "left")
    for r in rows:
        rel = r["rel"]
        pct = "new" if rel is None else f"{rel * 100:+.0f}%"
        worse = r["direction"] == "regression"
        t.add_row(
            str(r["identity"]),
            f"{r['metric']}" + (f" ({r['unit']})" if r["unit"] else ""),
            _fmt(r["a"]),
            _fmt(r["b"]),
            _fmt(r["delta"]),
            pct,
            "[red]worse[/]" if worse else "[green]better[/]",
        )
    return t


@click.command("compare", short_help="Compare two sets of runs; exit 1 on a regression.")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    "threshold_pct",
    type=float,
    default=None,
    help="every metric's relative gate, in percent (default: ktstr's per-metric gates)",
)
@click.option(
    "--policy",
    type=click.Path(path_type=Path),
    default=None,
    help='JSON per-metric gates: {"metrics": {"worst_gap_ms": {"abs": 100, "rel": 0.2}}}',
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="write the comparison")
def compare_cmd(
    a: Path, b: Path, threshold_pct: float | None, policy: Path | None, json_out: Path | None
) -> None:
    """Join A's and B's results (run directories or sidecar directories) by identity,
    average repeats, and show each metric that changed past both its absolute and its
    relative gate. Exit 1 if any got worse, 0 otherwise, 2 on bad input."""
    try:
        g = gates(threshold_pct, policy)
        side_a, side_b = sidecar.discover(a), sidecar.discover(b)
    except (PolicyError, sidecar.SidecarError) as e:
        fail(str(e))
    c = compare(side_a, side_b, g)
    if c.joined == 0:
        fail(f"{a} and {b} share no test identity (test, scheduler/profile, topology, engine)")
    doc = compare_doc.to_doc(c, str(a), str(b))
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(doc, indent=1) + "\n")
        except OSError as e:
            fail(f"--json {json_out}: {e.strerror or e}")
    out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    if doc["changes"]:
        out.print(_table(doc["changes"]))
    for label, keys in (("only in A", doc["only_a"]), ("only in B", doc["only_b"])):
        for k in keys:
            out.print(f"{label}: {k}", highlight=False, markup=False)
    n = len(c.regressions)
    verdict = f"{n} regression{'s' if n != 1 else ''}" if n else "no regression"
    out.print(
        f"{verdict}; {len(doc['changes'])} significant change(s) over {c.joined} "
        f"identit{'ies' if c.joined != 1 else 'y'} ({len(side_a)} vs {len(side_b)} results)",
        highlight=False,
    )
    sys.exit(RunExit.FAILED if n else RunExit.PASSED)
