"""cgroup v2 directories of a scenario: ``<root>/schedlab/<name>`` with the cpu and cpuset
controllers, nested names as nested directories.

The root is injectable: unit tests run against a temporary directory, where the kernel's
read-only files (``cpuset.cpus.effective``) are missing, so reads fall back to what was
written. Both controllers are threaded ones, so a parent that enables them for its children
may still hold tasks (``cgroup_migrate_vet_dst``: no domain controller is enabled).
"""

from __future__ import annotations

import os
import time

from guest.cgroups import BASE_NAME, CGROUP_ROOT, CgroupError

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("CONTROLLERS", "Cgroups", "CgroupError", "format_cpus", "parse_cpus")

CONTROLLERS = ("cpu", "cpuset")
_RMDIR_TRIES = 100  # x 20 ms: an exiting task leaves its cgroup asynchronously


def format_cpus(cpus: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the kernel's list format)."""
    out: list[str] = []
    for c in sorted(cpus):
        if out and "-" not in out[-1] and int(out[-1]) == c - 1:
            out[-1] = f"{out[-1]}-{c}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == c - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{c}"
        else:
            out.append(str(c))
    return ",".join(out)


def parse_cpus(text: str, limit: int = 4096) -> list[int]:
    """The kernel's list format back to sorted CPUs (``""`` -> ``[]``); bounded."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b - a > limit:
            raise ValueError(f"cpu range {part!r} too large")
        out.update(range(a, b + 1))
    return sorted(out)


class Cgroups:
    """Create, configure, populate and remove a scenario's cgroups.

    :param root: the cgroup2 mount point.
    :param rmdir: directory removal (``os.rmdir`` on a real cgroupfs).
    """

    def __init__(self, root: str = CGROUP_ROOT, rmdir: Callable[[str], None] = os.rmdir) -> None:
        self.root = root
        self.base = os.path.join(root, BASE_NAME)
        self._rmdir = rmdir
        self.created: list[str] = []  # in creation order (parents first)
        self._enabled: set[str] = set()  # directories whose subtree_control we set
        self.warnings: list[str] = []

    def path(self, name: str) -> str:
        return os.path.join(self.base, name) if name else self.base

    def setup(self) -> None:
        """The base directory, with both controllers enabled from the root down."""
        self._mkdir(self.base)
        self._enable(self.root)
        self._enable(self.base)

    def create(self, name: str) -> None:
        """``mkdir`` cgroup ``name`` (its parent exists) and give it the controllers' files."""
        parent = os.path.dirname(self.path(name))
        if parent != self.base:
            self._enable(parent)
        self._mkdir(self.path(name))
        self.created.append(name)

    def set_cpus(self, name: str, cpus: list[int] | None) -> None:
        """Write ``cpuset.cpus`` (None or [] clears it: all the parent's CPUs)."""
        # An empty write is no write() at all: the kernel would never see the clear.
        self._write(os.path.join(self.path(name), "cpuset.cpus"), format_cpus(cpus or []) or "\n")

    def holds_controllers(self, name: str) -> bool:
        """Whether we enabled controllers for ``name``'s children (then it may hold no task)."""
        return self.path(name) in self._enabled

    def make_leaf(self, name: str) -> None:
        """Take the controllers back from ``name``'s children so that it may hold tasks
        (cgroup v2's no-internal-process rule: moving a task there is EBUSY otherwise)."""
        d = self.path(name)
        for c in reversed(CONTROLLERS):
            self._write(os.path.join(d, "cgroup.subtree_control"), f"-{c}")
        self._enabled.discard(d)

    def cpus(self, name: str) -> list[int]:
        """The configured ``cpuset.cpus`` ([] when none is set)."""
        return parse_cpus(self._read(os.path.join(self.path(name), "cpuset.cpus")))

    def effective_cpus(self, name: str) -> list[int]:
        """``cpuset.cpus.effective``: what the kernel applies (configured ones in a fake tree)."""
        text = self._read(os.path.join(self.path(name), "cpuset.cpus.effective"), None)
        return parse_cpus(text) if text is not None else self.cpus(name)

    def move(self, name: str, pid: int) -> None:
        """Write ``pid`` to the cgroup's ``cgroup.procs`` ("" is the base, outside our groups
        in effect: the base has no cpuset)."""
        self._write(os.path.join(self.path(name), "cgroup.procs"), str(pid))

    def procs(self, name: str) -> list[int]:
        """The pids in ``cgroup.procs`` (in a fake tree: the last pid written)."""
        text = self._read(os.path.join(self.path(name), "cgroup.procs"))
        return [int(p) for p in text.split() if p.isdigit()][:65536]

    def remove(self, name: str) -> str:
        """Remove cgroup ``name`` and what lies below it, deepest first; "" or the error."""
        below = [n for n in self.created if n == name or n.startswith(name + "/")]
        errors = [self._remove_dir(self.path(n)) for n in sorted(below, key=len, reverse=True)]
        for n in below:
            self.created.remove(n)
        return "; ".join(e for e in errors if e)

    def remove_all(self) -> list[str]:
        """Remove every cgroup this object created, then the base; the errors."""
        errors = [self._remove_dir(self.path(n)) for n in reversed(self.created)]
        self.created.clear()
        errors.append(self._remove_dir(self.base))
        return [e for e in errors if e]

    # -- plumbing ------------------------------------------------------------------------

    def _enable(self, directory: str) -> None:
        if directory in self._enabled:
            return
        for c in CONTROLLERS:
            self._write(os.path.join(directory, "cgroup.subtree_control"), f"+{c}")
        self._enabled.add(directory)

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

    def _read(self, f: str, missing: str | None = "") -> str:
        try:
            with open(f) as fh:
                return fh.read(1 << 16)
        except FileNotFoundError:
            if missing is None:
                return None  # type: ignore[return-value]
            return missing
        except OSError as e:
            raise CgroupError(e.errno, f"read {f}: {e.strerror}") from None
