"""schedlab scenarios as code: cgroups, steps, ops and holds, checked when built.

>>> from schedlab_scenario import CgroupDef, Cpuset, Hold, Op, Scenario, Step, Backdrop
>>> s = Scenario(
...     "apply_midrun",
...     backdrop=Backdrop(cgroups=[CgroupDef("cg_0"), CgroupDef("cg_1")]),
...     steps=[
...         Step(hold=Hold.frac(0.5)),
...         Step(ops=[Op.set_cpuset("cg_0", Cpuset.disjoint(0, 2)),
...                   Op.set_cpuset("cg_1", Cpuset.disjoint(1, 2))], hold=Hold.frac(0.5)),
...     ],
... )

A bad value raises :class:`ScenarioError` naming the field (``CgroupDef("cg_0", workers=0)``
-> ``workers: 0 workers; ...``). :meth:`Scenario.to_document` resolves cpuset specs against a
:class:`~schedlab_shared.topology.Topology` into the scenario document the guest plays
(:mod:`guest.scenario.document`); :mod:`schedlab_scenario.catalog` holds the canned ones.

Modules: ``cpuset`` (Cpuset, usable_cpus), ``placement`` (WorkType, SchedPolicy, Affinity,
MemPolicy, Hold), ``cgroup`` (CgroupDef, WorkerSpec), ``ops`` (Op and one class per op),
``model`` (Step, Backdrop, Scenario, Requires), ``catalog``, ``errors``.
"""

from __future__ import annotations

from .cgroup import CgroupDef, WorkerSpec
from .cpuset import Cpuset, usable_cpus
from .errors import ScenarioError
from .model import Backdrop, Requires, Scenario, Step
from .ops import Op
from .placement import Affinity, Hold, MemPolicy, SchedPolicy, WorkType

__all__ = (
    "Affinity",
    "Backdrop",
    "CgroupDef",
    "Cpuset",
    "Hold",
    "MemPolicy",
    "Op",
    "Requires",
    "ScenarioError",
    "SchedPolicy",
    "Scenario",
    "Step",
    "WorkType",
    "WorkerSpec",
    "usable_cpus",
)
