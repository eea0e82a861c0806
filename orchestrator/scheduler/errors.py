"""The errors of the scheduler package: each carries one line saying what is wrong and what to do.

The CLI catches :class:`SchedulerError` and exits 2 with its message (no traceback).
"""

from __future__ import annotations

__all__ = (
    "DefinitionError",
    "ResolveError",
    "SchedulerBuildError",
    "SchedulerError",
    "SourceError",
    "ToolchainError",
)


class SchedulerError(RuntimeError):
    """Base of every error below."""


class DefinitionError(SchedulerError, ValueError):
    """A scheduler definition with a bad field; the message names the field."""


class ToolchainError(SchedulerError):
    """The build toolchain is missing and cannot be installed; says which apt-get line to run."""


class SourceError(SchedulerError):
    """The kernel source subset cannot be had."""


class SchedulerBuildError(SchedulerError):
    """Building failed or the cache is unusable; names the log when there is one."""


class ResolveError(SchedulerError):
    """``--scheduler NAME|PATH`` names nothing runnable in the guest."""
