"""What the guest sends on a host dump request: cheap scheduler state, read from files.

Sources: ``/proc/schedstat``, ``/sys/kernel/sched_ext/state`` and ``root/ops`` (if
sched_ext exists), ``/proc/pressure/cpu``, and every ``cpu.stat`` under
``/sys/fs/cgroup/schedlab``. Each read is capped at :data:`READ_CAP` bytes.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ("READ_CAP", "SOURCES", "gather_dump")

READ_CAP = 256 * 1024
SOURCES = (
    "proc/schedstat",
    "sys/kernel/sched_ext/state",
    "sys/kernel/sched_ext/root/ops",
    "proc/pressure/cpu",
)
_CGROUP_BASE = "sys/fs/cgroup/schedlab"


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(READ_CAP)
    except OSError:
        return None


def gather_dump(root: Path) -> list[tuple[str, bytes]]:
    """Read the dump sources that exist.

    :param root: filesystem root ("/" in the guest).
    :return: ``(source path as seen in the guest, content)`` pairs, missing sources skipped.
    """
    paths = [root / s for s in SOURCES]
    base = root / _CGROUP_BASE
    if base.is_dir():
        paths += sorted(base.glob("cpu.stat")) + sorted(base.glob("*/cpu.stat"))
    out = []
    for p in paths:
        data = _read(p)
        if data is not None:
            out.append(("/" + str(p.relative_to(root)), data))
    return out
