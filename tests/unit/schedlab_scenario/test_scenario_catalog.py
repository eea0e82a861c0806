"""The catalog: every canned scenario builds and resolves where its requirements hold."""

import msgpack
import pytest

from guest.scenario import document
from schedlab_scenario import ScenarioError
from schedlab_scenario.catalog import CATALOG, CATEGORIES, DEFAULT, canned, get
from schedlab_shared.topology import Topology

KTSTR_14 = (
    "steady steady_llc cpuset_apply cpuset_clear cpuset_resize cgroup_add cgroup_remove "
    "affinity_change affinity_pinned nested_steady nested_task_move oversubscribed "
    "host_contention mixed_workloads"
).split()
TOPOLOGIES = [
    Topology(1, 1, 2, 1),
    Topology(1, 2, 2, 1),
    Topology(2, 2, 2, 2),
    Topology(1, 1, 4, 1),
]


def test_ktstr_s_fourteen_are_there():
    assert set(KTSTR_14) <= set(CATALOG)
    assert DEFAULT == "steady" and get("steady").category == "basic"
    for e in CATALOG.values():
        assert e.category in CATEGORIES and e.summary and e.build(TOPOLOGIES[2]).name == e.name


@pytest.mark.parametrize("name", sorted(CATALOG))
@pytest.mark.parametrize("topo", TOPOLOGIES, ids=lambda t: t.spec)
def test_each_entry_resolves_and_survives_the_wire(name, topo):
    entry = CATALOG[name]
    scenario = entry.build(topo)
    try:
        entry.requires.check(topo)
    except ScenarioError:
        with pytest.raises(ScenarioError, match="requires"):
            scenario.to_document(topo, duration_s=2.0)
        return
    doc = scenario.to_document(topo, duration_s=2.0)
    wire = msgpack.unpackb(msgpack.packb(doc, use_bin_type=True), raw=False)
    assert document.validate(wire) == doc
    assert scenario.planned_s(2.0) == pytest.approx(2.0)


def test_thirty_more_entries_cover_ktstr_s_categories():
    more = [e for e in CATALOG.values() if e.name not in KTSTR_14]
    assert len(more) >= 30
    assert {e.category for e in more} == set(CATEGORIES)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="known: steady"):
        get("nope")


def test_registration_refuses_duplicates_and_unknown_categories():
    with pytest.raises(ValueError, match="twice"):
        canned("steady", "basic", "again")(lambda t: None)
    with pytest.raises(ValueError, match="category"):
        canned("x", "misc", "x")
