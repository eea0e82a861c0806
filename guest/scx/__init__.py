"""sched_ext in the guest: run a scheduler under test, watch it, explain how it ended.

Kept import-free (the guest starts under TCG). The pure parsers, :mod:`guest.scx.exit_parse`
and :mod:`guest.scx.verifier_log`, use the standard library only and are imported by the
host too; the other modules run in the guest.

API summary
-----------
``guest.scx.run``
    ``SchedulerRun(path, args, send, root="/", ...)``: ``start() -> AttachOutcome``,
    ``watch(on_exit)``, ``sysrq_dump() -> bytes``, ``stop() -> StopOutcome``,
    ``claim_status(pid, status) -> bool`` (for PID 1's orphan reaper), ``pid``.
``guest.scx.outcomes``
    ``AttachOutcome``, ``StopOutcome`` (named tuples with ``as_map()``), their status names.
``guest.scx.exit_parse`` (pure)
    ``EXIT_KINDS``, ``SchedExit``, ``Task``, ``parse_exit_line``, ``parse_kmsg_line``,
    ``parse_stall``, ``KmsgExitParser``, ``combine``, ``extract_debug_dump``,
    ``trace_dump_lines``.
``guest.scx.verifier_log`` (pure)
    ``collapse_loops(lines)``, ``summarize(text, max_lines)``.
``guest.scx.sysfs``, ``guest.scx.log_pump``, ``guest.scx.watch``, ``guest.scx.trace``
    the pieces :class:`~guest.scx.run.SchedulerRun` is made of.
"""
