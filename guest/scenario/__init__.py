"""Scenarios in the guest: the document the host sends, and the runner that plays it.

Kept import-free (see :mod:`guest`). Contract modules, imported by the host too (stdlib only):

``guest.scenario.document``
    the scenario document: ``validate(doc) -> dict`` (the normalised document; raises
    :class:`guest.spec.SpecError` naming the field), ``VERSION``, the bounds, ``OPS``.
``guest.scenario.work``
    the work types a cgroup may run: ``WORK_TYPES`` (name -> :class:`~guest.scenario.work.WorkTypeSpec`
    with its parameters and group size), ``check_work(name, params, path)``, ``register``.
The runner that plays a document in the guest (cgroup v2, affinity, policies, per-step
records) follows in this package.
"""
