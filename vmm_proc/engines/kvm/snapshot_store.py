"""A snapshot on disk: a directory holding ``state`` (snapshot_codec) and ``memory`` (the
guest RAM image, sparse). Written under a temporary name and renamed, so a reader sees a
whole snapshot or none; any doubt on load is a SnapshotError and the caller boots cold.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vmm_proc.engines.base import SnapshotRefused
from vmm_proc.engines.kvm.snapshot_codec import SnapshotError, decode, encode
from vmm_proc.engines.kvm.snapshot_state import MachineSnapshot
from vmm_proc.mem.sparse_copy import copy_sparse

__all__ = ("LoadedSnapshot", "RestoreFrom", "SnapshotRefused", "discard", "load", "save")

STATE, MEMORY = "state", "memory"
_MAX_STATE = 64 << 20


@dataclass(frozen=True)
class RestoreFrom:
    """Where a KvmEngine restores from.

    :param key: must equal the snapshot's key.
    :param private_memory: map the RAM image copy-on-write (MAP_PRIVATE: fastest, but no
        other process can read guest RAM); False copies it into the run's shared RAM file.
    """

    directory: str
    key: dict[str, str]
    private_memory: bool = True


@dataclass(frozen=True)
class LoadedSnapshot:
    """A checked snapshot and the path of its RAM image."""

    state: MachineSnapshot
    memory: str
    directory: str


def save(directory: str, snap: MachineSnapshot, ram_path: str) -> int:
    """Write ``snap`` and a sparse copy of ``ram_path`` as ``directory`` (replacing it).

    :return: bytes of RAM copied.
    """
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        mem = tmp / MEMORY
        with open(mem, "wb") as f:
            f.truncate(snap.meta.mem_bytes)
        copied = copy_sparse(ram_path, str(mem), snap.meta.mem_bytes)
        (tmp / STATE).write_bytes(encode(snap))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return copied


def load(directory: str, key: dict[str, str]) -> LoadedSnapshot:
    """Read and check a snapshot against ``key``.

    :raises SnapshotError: missing, corrupt, written by another format, or for another key.
    """
    base = Path(directory)
    try:
        size = (base / STATE).stat().st_size
        if size > _MAX_STATE:
            raise SnapshotError(f"state file of {size} bytes is implausibly large")
        blob = (base / STATE).read_bytes()
        mem_size = (base / MEMORY).stat().st_size
    except OSError as e:
        raise SnapshotError(f"cannot read: {e.strerror or e}") from None
    snap = decode(MachineSnapshot, blob)
    if snap.meta.key != key:
        diff = sorted(
            k for k in set(key) | set(snap.meta.key) if key.get(k) != snap.meta.key.get(k)
        )
        raise SnapshotError(f"taken for another configuration (differs in {', '.join(diff)})")
    if mem_size != snap.meta.mem_bytes:
        raise SnapshotError(f"memory image has {mem_size} bytes, expected {snap.meta.mem_bytes}")
    if len(snap.vcpus) != len(snap.meta.apic_ids):
        raise SnapshotError(f"{len(snap.vcpus)} vCPU states for {len(snap.meta.apic_ids)} vCPUs")
    return LoadedSnapshot(snap, str(base / MEMORY), str(base))


def discard(directory: str) -> None:
    """Remove a snapshot (a bad one must not be tried again)."""
    shutil.rmtree(directory, ignore_errors=True)
