"""``schedlab list`` and the ``--scenario`` of ``schedlab run``: catalog entries as run plans."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from guest.scenario import document
from guest.spec import SpecError
from schedlab_scenario import CgroupDef, Scenario, ScenarioError, Step
from schedlab_scenario.catalog import CATALOG, CATEGORIES, DEFAULT, get
from schedlab_scenario.model import topology_doc
from schedlab_shared.topology import Topology

from .request import Scenario as RunScenario

__all__ = ("list_cmd", "load_plan", "plan_for")

_MAX_PLAN_BYTES = 4 << 20


def _steady(cgroups: int) -> Scenario:
    """The default run: ``cgroups`` cgroups of spinners, ``steady`` itself when there are two."""
    if cgroups == 2:
        return get(DEFAULT).build(Topology())
    return Scenario(DEFAULT, [Step(cgroups=[CgroupDef(f"cg_{i}") for i in range(cgroups)])])


def load_plan(path: Path, topology: Topology) -> dict[str, object]:
    """A scenario document from a JSON file (``Scenario.to_document`` written out), checked
    as the guest will check it and against the run's topology.

    :raises ScenarioError: unreadable, not JSON, a bad field, another topology.
    """
    try:
        if path.stat().st_size > _MAX_PLAN_BYTES:
            raise ScenarioError("--plan", f"{path}: larger than {_MAX_PLAN_BYTES >> 20} MiB")
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ScenarioError("--plan", f"{path}: {e}") from None
    try:
        plan = document.validate(raw)
    except SpecError as e:
        raise ScenarioError("--plan", f"{path}: {e}") from None
    if plan["topology"] != topology_doc(topology):
        raise ScenarioError(
            "--plan", f"{path} was resolved for another topology than {topology.spec}"
        )
    return plan


def plan_for(
    name: str | None,
    topology: Topology,
    duration_s: float,
    workers: int,
    cgroups: int,
    plan_file: Path | None = None,
) -> RunScenario:
    """The run's scenario: catalog entry ``name`` (None: steady with ``cgroups`` cgroups),
    resolved for ``topology``; or the document in ``plan_file`` (then ``duration_s`` is its).

    :raises ScenarioError: a bad name, or a scenario this topology cannot run (the message
        says which topology would do).
    """
    if not 1 <= cgroups <= 64:
        raise ScenarioError("--cgroups", f"{cgroups} is outside 1..64")
    if not 1 <= workers <= 256:
        raise ScenarioError("--workers", f"{workers} is outside 1..256")
    if plan_file is not None:
        if name is not None:
            raise ScenarioError("--plan", "give --scenario or --plan, not both")
        plan = load_plan(plan_file, topology)
        return RunScenario(
            name=str(plan["name"]),
            duration_s=float(plan["duration_s"]),  # type: ignore[arg-type]
            cgroups=cgroups,
            workers=workers,
            plan=plan,
            planned_s=document.planned_s(plan),
        )
    if name is None:
        scenario = _steady(cgroups)
    else:
        try:
            scenario = get(name).build(topology)
        except KeyError as e:
            raise ScenarioError("--scenario", str(e.args[0])) from None
    try:
        plan = scenario.to_document(topology, duration_s=duration_s, workers=workers)
    except ScenarioError as e:
        raise ScenarioError(f"scenario {scenario.name}", str(e)) from None
    return RunScenario(
        name=scenario.name,
        duration_s=float(plan["duration_s"]),  # type: ignore[arg-type]
        cgroups=cgroups,
        workers=workers,
        plan=plan,
        planned_s=scenario.planned_s(float(plan["duration_s"])),  # type: ignore[arg-type]
    )


def _rows() -> list[dict[str, Any]]:
    out = []
    for e in sorted(CATALOG.values(), key=lambda e: (CATEGORIES.index(e.category), e.name)):
        r = e.requires
        out.append(
            {
                "name": e.name,
                "category": e.category,
                "summary": e.summary,
                "requires": {"cpus": r.cpus, "llcs": r.llcs, "nodes": r.nodes},
            }
        )
    return out


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def list_cmd(as_json: bool) -> None:
    """The catalog of canned scenarios (run one with 'schedlab run --scenario NAME')."""
    rows = _rows()
    if as_json:
        json.dump({"scenarios": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    width = max(len(r["name"]) for r in rows)  # type: ignore[arg-type]
    for r in rows:
        req = r["requires"]
        needs = ", ".join(f"{v} {k}" for k, v in req.items() if v > 1)  # type: ignore[union-attr]
        extra = f"  (needs {needs})" if needs else ""
        click.echo(f"{r['name']:<{width}}  {r['category']:<12} {r['summary']}{extra}")
