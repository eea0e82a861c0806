"""Scenarios in the guest: the document the host sends, and the runner that plays it.

Kept import-free (see :mod:`guest`). Contract modules, imported by the host too (stdlib only):

``guest.scenario.document``
    the scenario document: ``validate(doc) -> dict`` (the normalised document; raises
    :class:`guest.spec.SpecError` naming the field), ``VERSION``, the bounds, ``OPS``.
``guest.scenario.work``
    the work types a cgroup may run: ``WORK_TYPES`` (name -> :class:`~guest.scenario.work.WorkTypeSpec`
    with its parameters and group size), ``check_work(name, params, path)``, ``register``.
``guest.scenario.record``
    what the runner reports per step (ops with their effect times, worker segments):
    ``STEP``, ``OP``, ``SEGMENT``, ``BACKDROP``; ``check_steps`` (the host, on read).

Guest only:

``guest.scenario.runner``
    ``run_scenario(plan, cgroups, pool, stop, ...) -> ScenarioOutcome``: backdrop, steps,
    holds, ops, step records; ``spinners_plan`` for a run with no document.
``guest.scenario.apply`` (the ops), ``guest.scenario.judge`` (reports, segments, verdict),
``guest.scenario.cgroupfs`` (cgroup v2 files), ``guest.scenario.placement`` (policy, nice,
affinity, memory policy), ``guest.scenario.stepclock`` (the step counter workers read),
``guest.scenario.worker`` (kind ``scenario``: a work type cut into per-step segments).
"""
