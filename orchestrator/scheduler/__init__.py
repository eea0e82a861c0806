"""sched_ext schedulers on the host side: definitions, builds per kernel, ``--scheduler``.

API summary:

- :class:`orchestrator.scheduler.definition.SchedulerDef` (``name, binary, ops, args, flags,
  sysctls, kargs, topology, watchdog_timeout_s``; ``argv_tail(flags, extra)``,
  ``fits(topology)``), :class:`SchedFlag`, :class:`Sysctl`, :class:`TopologyConstraints`,
  :data:`EEVDF`. The examples' definitions: :data:`orchestrator.scheduler.examples.EXAMPLES`.
- :func:`orchestrator.scheduler.cache.ensure_built(kernel)` -> :class:`BuildCache`
  (``schedulers[name]``: ``path, ops, usage, kernel``); ``load_built``, ``list_built``.
  The default builder is :class:`orchestrator.scheduler.build.ExampleBuilder`.
- :func:`orchestrator.scheduler.resolve.resolve_scheduler(spec, kernel, flags=, sched_args=)`
  -> :class:`SchedulerLaunch` (``argv``, ``env``, ``files``: :class:`GuestFile` ``host,
  guest, mode, role``; ``to_dict()`` for the transfer).
- Errors: :class:`orchestrator.scheduler.errors.SchedulerError` and its subclasses, one line each.
- :data:`orchestrator.scheduler.cli.scheduler_group`: ``schedlab scheduler build|list``.
"""
