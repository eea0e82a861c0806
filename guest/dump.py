"""What the guest sends on a host dump request: cheap scheduler state, read from files.

Sources: ``/proc/schedstat``, ``/sys/kernel/sched_ext/state`` and ``root/ops`` (if
sched_ext exists), ``/proc/pressure/cpu``, and every ``cpu.stat`` under
``/sys/fs/cgroup/schedlab``. Each read is capped at :data:`READ_CAP` bytes.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    StrPath = str | os.PathLike[str]

__all__ = ("READ_CAP", "SOURCES", "gather_dump")

READ_CAP = 256 * 1024
SOURCES = (
    "proc/schedstat",
    "sys/kernel/sched_ext/state",
    "sys/kernel/sched_ext/root/ops",
    "proc/pressure/cpu",
)
_CGROUP_BASE = "sys/fs/cgroup/schedlab"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(READ_CAP)
    except OSError:
        return None


def _cgroup_stats(base: str) -> list[str]:
    try:
        subdirs = sorted(e for e in os.listdir(base) if os.path.isdir(os.path.join(base, e)))
    except OSError:
        return []
    return [os.path.join(base, "cpu.stat")] + [os.path.join(base, e, "cpu.stat") for e in subdirs]


def gather_dump(root: StrPath) -> list[tuple[str, bytes]]:
    """Read the dump sources that exist.

    :param root: filesystem root ("/" in the guest).
    :return: ``(source path as seen in the guest, content)`` pairs, missing sources skipped.
    """
    rels = list(SOURCES) + [
        os.path.relpath(p, root) for p in _cgroup_stats(os.path.join(root, _CGROUP_BASE))
    ]
    out = []
    for rel in rels:
        data = _read(os.path.join(root, rel))
        if data is not None:
            out.append(("/" + rel, data))
    return out
