"""``schedlab list`` and the ``--scenario`` of ``schedlab run``: catalog entries as run plans."""

from __future__ import annotations

import json
import sys

import click

from schedlab_scenario import CgroupDef, Scenario, ScenarioError, Step
from schedlab_scenario.catalog import CATALOG, CATEGORIES, DEFAULT, get
from schedlab_shared.topology import Topology

from .request import Scenario as RunScenario

__all__ = ("list_cmd", "plan_for")


def _steady(cgroups: int) -> Scenario:
    """The default run: ``cgroups`` cgroups of spinners, ``steady`` itself when there are two."""
    if cgroups == 2:
        return get(DEFAULT).build(Topology())
    return Scenario(DEFAULT, [Step(cgroups=[CgroupDef(f"cg_{i}") for i in range(cgroups)])])


def plan_for(
    name: str | None, topology: Topology, duration_s: float, workers: int, cgroups: int
) -> RunScenario:
    """The run's scenario: catalog entry ``name`` (None: steady with ``cgroups`` cgroups),
    resolved for ``topology``.

    :raises ScenarioError: a bad name, or a scenario this topology cannot run (the message
        says which topology would do).
    """
    if not 1 <= cgroups <= 64:
        raise ScenarioError("--cgroups", f"{cgroups} is outside 1..64")
    if not 1 <= workers <= 256:
        raise ScenarioError("--workers", f"{workers} is outside 1..256")
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
        duration_s=plan["duration_s"],
        cgroups=cgroups,
        workers=workers,
        plan=plan,
        planned_s=scenario.planned_s(plan["duration_s"]),
    )


def _rows() -> list[dict[str, object]]:
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
