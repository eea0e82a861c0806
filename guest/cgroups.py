"""cgroup v2 groups of a run: ``<root>/schedlab/cg0..cgN-1``.

The root is injectable so tests run against a temporary directory (pass an ``rmdir``
that also removes the plain files a test directory accumulates).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # pathlib and typing cost seconds of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable

    StrPath = str | os.PathLike[str]

__all__ = ("CGROUP_ROOT", "BASE_NAME", "CgroupError", "CgroupTree")

CGROUP_ROOT = "/sys/fs/cgroup"
BASE_NAME = "schedlab"
_RMDIR_TRIES = 50  # x 20 ms: an exiting task leaves its cgroup asynchronously


class CgroupError(OSError):
    """A cgroup operation failed; the message names the path."""


class CgroupTree:
    """Create, populate and remove the run's cgroups.

    :param root: the cgroup2 mount point.
    :param rmdir: directory removal (``os.rmdir`` on a real cgroupfs).
    """

    def __init__(self, root: StrPath = CGROUP_ROOT, rmdir: Callable[[str], None] = os.rmdir):
        self.root = os.fspath(root)
        self.base = os.path.join(self.root, BASE_NAME)
        self._rmdir = rmdir
        self.names: list[str] = []

    def path(self, name: str) -> str:
        """Directory of cgroup ``name``."""
        return os.path.join(self.base, name)

    def create(self, count: int) -> list[str]:
        """Create ``cg0..cg<count-1>`` with the cpu controller enabled above them.

        :return: the cgroup names.
        :raises CgroupError: a mkdir or controller write failed.
        """
        # A controller is usable in a cgroup only if its parent's subtree_control enables it.
        self._mkdir(self.base)
        self._write(os.path.join(self.root, "cgroup.subtree_control"), "+cpu")
        self._write(os.path.join(self.base, "cgroup.subtree_control"), "+cpu")
        for i in range(count):
            name = f"cg{i}"
            self._mkdir(self.path(name))
            self.names.append(name)
        return list(self.names)

    def move(self, name: str, pid: int) -> None:
        """Move process ``pid`` into cgroup ``name``.

        :raises CgroupError: the write to ``cgroup.procs`` failed.
        """
        self._write(os.path.join(self.path(name), "cgroup.procs"), str(pid))

    def cpu_stat(self, name: str) -> str:
        """Text of the cgroup's ``cpu.stat`` ("" when unreadable)."""
        try:
            with open(os.path.join(self.path(name), "cpu.stat")) as f:
                return f.read()
        except OSError:
            return ""

    def remove(self) -> list[str]:
        """Remove the run's cgroups (call after the workers exited).

        :return: one message per directory that could not be removed (empty on success).
        """
        errors = []
        for d in [self.path(n) for n in reversed(self.names)] + [self.base]:
            err = self._remove_dir(d)
            if err:
                errors.append(err)
        self.names.clear()
        return errors

    def _remove_dir(self, d: str) -> str:
        for attempt in range(_RMDIR_TRIES):
            try:
                self._rmdir(d)
                return ""
            except FileNotFoundError:
                return ""
            except OSError as e:
                if attempt == _RMDIR_TRIES - 1:
                    return f"rmdir {d}: {e.strerror or e}"
                time.sleep(0.02)
        return ""

    def _mkdir(self, d: str) -> None:
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise CgroupError(e.errno, f"mkdir {d}: {e.strerror}") from None

    def _write(self, f: str, text: str) -> None:
        try:
            with open(f, "w") as fh:
                fh.write(text)
        except OSError as e:
            raise CgroupError(e.errno, f"write {text!r} to {f}: {e.strerror}") from None
