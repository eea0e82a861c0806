"""``schedlab topo list [--json]``: the named topology presets and where each can run."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from schedlab_shared.topology_presets import ENGINES, PRESETS, engine_limit, engine_refusal

__all__ = ("topo_group",)


def preset_rows() -> list[dict[str, Any]]:
    """One row per preset: its shape in both notations, counts, and per-engine refusal."""
    rows = []
    for p in PRESETS.values():
        s = p.shape
        rows.append(
            {
                "name": p.name,
                "notation": s.notation,
                "spec": s.spec,
                "cpus": s.nr_cpus,
                "nodes": s.nodes,
                "llcs": s.llcs,
                "cores_per_llc": s.cores,
                "threads": s.threads,
                "features": sorted(p.features),
                "engines": {e: engine_refusal(s, e) is None for e in ENGINES},
                "refused": {e: r for e in ENGINES if (r := engine_refusal(s, e))},
            }
        )
    return rows


@click.group("topo", context_settings={"help_option_names": ["-h", "--help"]})
def topo_group() -> None:
    """Topology presets: use a name, ktstr's 1n2l4c1t or N,L,C,T wherever --topology is taken."""


@topo_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def list_cmd(as_json: bool) -> None:
    """The 24 presets (ktstr's x86 gauntlet shapes); 'l' in 1n2l4c1t counts all LLCs."""
    rows = preset_rows()
    if as_json:
        json.dump({"presets": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    click.echo(f"{'name':<20} {'notation':<11} {'N,L,C,T':<9} {'cpus':>4}  runs on")
    for r in rows:
        on = ", ".join(e for e, ok in r["engines"].items() if ok) or "none here"
        click.echo(f"{r['name']:<20} {r['notation']:<11} {r['spec']:<9} {r['cpus']:>4}  {on}")
    if any(r["refused"] for r in rows):
        click.echo("")
        for e in ENGINES:
            click.echo(f"{e}: {engine_limit(e)}")
