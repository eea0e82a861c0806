"""Write schedlab tests as plain pytest (the plugin is registered by entry point).

>>> import schedlab_test as sl
>>> @sl.vm(topology="tiny-2llc", duration=2)
... def test_two_cgroups(ctx):
...     return sl.Scenario("two", [sl.Step(cgroups=[sl.CgroupDef("cg_0"), sl.CgroupDef("cg_1")])])

``vm(...)`` is ``pytest.mark.schedlab(...)`` with its keywords checked at import
(:class:`~schedlab_test.spec.VmSpec` lists them); the scenario model is
:mod:`schedlab_scenario`'s, re-exported here.
"""

from __future__ import annotations

from typing import Any

import pytest

from schedlab_scenario import (
    Affinity,
    Backdrop,
    CgroupDef,
    Cpuset,
    Hold,
    MemPolicy,
    Op,
    Scenario,
    SchedPolicy,
    Step,
    WorkType,
)

from .spec import MARKER, SpecError, VmSpec, spec_of

__all__ = (
    "Affinity",
    "Backdrop",
    "CgroupDef",
    "Cpuset",
    "Hold",
    "MemPolicy",
    "Op",
    "Scenario",
    "SchedPolicy",
    "SpecError",
    "Step",
    "VmSpec",
    "WorkType",
    "vm",
)


def vm(**shape: Any) -> pytest.MarkDecorator:  # noqa: ANN401
    """The ``schedlab`` marker with ``shape`` checked now (a bad keyword is a collection
    error naming it)."""
    spec_of(shape)
    return getattr(pytest.mark, MARKER)(**shape)
