"""Helpers over :class:`monitor_proc.program.Program`, one module per kernel subsystem."""
