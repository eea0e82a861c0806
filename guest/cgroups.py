"""Where a run's cgroups live (``<root>/schedlab``) and the error of a cgroup operation.

The cgroups themselves are made by :mod:`guest.scenario.cgroupfs`.
"""

from __future__ import annotations

__all__ = ("CGROUP_ROOT", "BASE_NAME", "CgroupError")

CGROUP_ROOT = "/sys/fs/cgroup"
BASE_NAME = "schedlab"


class CgroupError(OSError):
    """A cgroup operation failed; the message names the path."""
