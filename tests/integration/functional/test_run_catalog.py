"""Tier 3, one flag away: the whole catalog on EEVDF (``SCHEDLAB_FULL_CATALOG=1``).

CI runs ktstr's fourteen canned scenarios (test_run_scenarios.py); the other entries cost a VM
run each, so they run only when asked::

    SCHEDLAB_FULL_CATALOG=1 flock /tmp/schedlab-vm.lock $V/python -m pytest \\
        tests/integration/functional/test_run_catalog.py -q

Each entry runs on the smallest topology its requirements allow and must pass, with every
op taking effect and every held worker making progress within its CPU mask.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from schedlab_scenario.catalog import CATALOG
from schedlab_scenario.model import Requires
from schedlab_shared.topology import Topology
from tests.integration.functional.test_run_scenarios import KTSTR_14, _check_records, _run
from tests.integration.functional.test_run_scenarios import kernel as kernel  # noqa: F401

pytestmark = pytest.mark.slow

FULL = os.environ.get("SCHEDLAB_FULL_CATALOG") == "1"
#: with the flag, every entry but the fourteen CI already runs
NAMES = [n for n in CATALOG if n not in KTSTR_14]


def smallest_topology(r: Requires) -> str:
    """The smallest N,L,C,T (at least 2 CPUs) meeting ``r``."""
    llcs = -(-r.llcs // r.nodes)
    cores = max(2 if r.nodes * llcs == 1 else 1, -(-r.cpus // (r.nodes * llcs)))
    return f"{r.nodes},{llcs},{cores},1"


def test_the_smallest_topology_meets_each_entry_s_requirements() -> None:
    for entry in CATALOG.values():
        topo = Topology.parse(smallest_topology(entry.requires))
        entry.requires.check(topo)
        assert topo.nr_cpus >= 2


if FULL:  # defined only when asked: no skipped test in CI's report

    @pytest.mark.parametrize("name", NAMES)
    def test_catalog_entry_passes_on_eevdf(kernel, tmp_path: Path, name: str) -> None:  # noqa: ANN001, F811
        spec = smallest_topology(CATALOG[name].requires)
        result = _run(tmp_path, "--scenario", name, "--topology", spec, "--duration", "1.5")
        assert result["passed"] and result["verdict"] == "passed", result["reasons"]
        _check_records(result, name, Topology.parse(spec))
