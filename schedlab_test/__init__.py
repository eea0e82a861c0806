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

from typing import TYPE_CHECKING, Any

import pytest

from .marker import MARKER

if TYPE_CHECKING:
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

    from .spec import SpecError, VmSpec

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

# Resolved on first use (PEP 562): importing the plugin (every pytest run, by entry point)
# must not import the scenario model and what it pulls in.
_LAZY = {n: "schedlab_scenario" for n in __all__ if n not in ("SpecError", "VmSpec", "vm")}
_LAZY.update(SpecError="schedlab_test.spec", VmSpec="schedlab_test.spec")


def __getattr__(name: str) -> Any:  # noqa: ANN401
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'schedlab_test' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def vm(**shape: Any) -> pytest.MarkDecorator:  # noqa: ANN401
    """The ``schedlab`` marker with ``shape`` checked now (a bad keyword is a collection
    error naming it)."""
    from .spec import spec_of

    spec_of(shape)
    return getattr(pytest.mark, MARKER)(**shape)
