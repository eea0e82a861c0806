"""Host CPU and memory slots, so concurrent VMs (pytest-xdist workers, other sessions) never
oversubscribe the host (ktstr's ``--cpu-cap`` idea).

The host has ``cpus`` CPU slots and ``mem_mib // MEM_SLOT_MIB`` memory slots, each a file
under ``<dir>`` held with ``flock``: the kernel drops a dead holder's locks, so a crashed
session frees its slots. A VM takes ``min(vcpus, cpus)`` CPU slots and enough memory slots
for its RAM, all or none, under one directory lock (no hold-and-wait, no deadlock); when they
are not free it waits, and says so once through ``notify``, naming what it waits for.

>>> with Slots(cpus=2, mem_mib=4096).take(vcpus=2, mem_mib=512, notify=print):
...     pass  # the VM runs here
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from schedlab_shared.cache import cache_root

__all__ = ("MEM_SLOT_MIB", "Lease", "Slots", "SlotsError", "host_mem_mib")

MEM_SLOT_MIB = 256
_POLL_S = 0.25


class SlotsError(Exception):
    """A VM larger than the host's whole budget (it would wait forever)."""


def host_mem_mib() -> int:
    """MemTotal in MiB (the budget every session computes alike)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4096


@dataclass
class Lease:
    """Slots held; closing the files releases them."""

    cpu: list[int]
    mem: list[int]
    waited_s: float
    _fds: list[int]

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


class Slots:
    """:param cpus: CPU slots (default: the host's CPUs, or ``$SCHEDLAB_VM_SLOTS``).
    :param mem_mib: memory budget (default: 3/4 of MemTotal, or ``$SCHEDLAB_VM_MEM_MIB``).
    """

    def __init__(
        self, cpus: int | None = None, mem_mib: int | None = None, root: Path | None = None
    ) -> None:
        env_cpus, env_mem = (
            os.environ.get("SCHEDLAB_VM_SLOTS"),
            os.environ.get("SCHEDLAB_VM_MEM_MIB"),
        )
        self.cpus = cpus or (int(env_cpus) if env_cpus else os.cpu_count() or 1)
        self.mem_mib = mem_mib or (int(env_mem) if env_mem else host_mem_mib() * 3 // 4)
        self.mem_slots = max(1, self.mem_mib // MEM_SLOT_MIB)
        self.root = root or cache_root() / "vm-slots"

    def _try(self, n_cpu: int, n_mem: int) -> tuple[list[int], list[int], list[int]] | None:
        fds: list[int] = []
        got: dict[str, list[int]] = {"cpu": [], "mem": []}
        for kind, total, want in (("cpu", self.cpus, n_cpu), ("mem", self.mem_slots, n_mem)):
            for i in range(total):
                if len(got[kind]) == want:
                    break
                fd = os.open(self.root / f"{kind}-{i}.slot", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                fds.append(fd)
                got[kind].append(i)
            if len(got[kind]) < want:
                for fd in fds:
                    os.close(fd)
                return None
        return got["cpu"], got["mem"], fds

    def acquire(
        self,
        vcpus: int,
        mem_mib: int,
        notify: Callable[[str], None] | None = None,
        timeout_s: float | None = None,
    ) -> Lease:
        """Block until the slots are free; ``notify`` hears once that this VM waits.

        :raises SlotsError: never satisfiable, or ``timeout_s`` passed.
        """
        n_cpu = min(max(1, vcpus), self.cpus)
        n_mem = -(-max(1, mem_mib) // MEM_SLOT_MIB)
        if n_mem > self.mem_slots:
            raise SlotsError(
                f"a {mem_mib} MiB VM exceeds the host's VM memory budget of {self.mem_mib} MiB "
                "(SCHEDLAB_VM_MEM_MIB)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        t0, told = time.monotonic(), False
        while True:
            with open(self.root / "slots.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                got = self._try(n_cpu, n_mem)
            if got is not None:
                return Lease(got[0], got[1], time.monotonic() - t0, got[2])
            if not told and notify is not None:
                notify(
                    f"waiting for {n_cpu} of {self.cpus} CPU slots and {n_mem * MEM_SLOT_MIB} "
                    f"MiB of {self.mem_mib} MiB (other VMs hold them; {self.root})"
                )
                told = True
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                raise SlotsError(f"no free slots for {n_cpu} CPUs within {timeout_s:g} s")
            time.sleep(_POLL_S)

    @contextmanager
    def take(
        self, vcpus: int, mem_mib: int, notify: Callable[[str], None] | None = None
    ) -> Iterator[Lease]:
        lease = self.acquire(vcpus, mem_mib, notify)
        try:
            yield lease
        finally:
            lease.release()
