"""vmm_proc's side of snapshots: what the guest said before the snapshot, and starting an
engine from a snapshot with a cold boot as the fallback.

A snapshot is taken after SYS_RDY, so the guest's output up to that point (the boot log,
SYS_RDY itself) is not produced again by a restored guest: it is saved beside the snapshot
(``streams``) and replayed as the first bytes of each stream, so the collector sees the
same streams as after a boot.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schedlab_shared.vm_config import VmConfig
from vmm_proc.engines.kvm.snapshot_codec import SnapshotError, decode, encode
from vmm_proc.engines.kvm.snapshot_store import RestoreFrom
from vmm_proc.engines.kvm.snapshot_store import discard as discard_snapshot
from vmm_proc.streamlog import StreamLog

__all__ = (
    "StreamPrefix",
    "cold",
    "load_prefix",
    "refuse",
    "restore_from",
    "save_prefix",
    "snapshot_streams",
    "take",
)

log = logging.getLogger("vmm_proc")

STREAMS_FILE = "streams"
MAX_PREFIX = 64 << 20


@dataclass
class StreamPrefix:
    """Each stream's bytes before the snapshot, by stream name."""

    streams: dict[str, bytes]


def snapshot_streams(logs: dict[str, StreamLog]) -> dict[str, bytes]:
    """Every byte of each stream so far; SnapshotError if a log no longer holds its start."""
    out = {}
    for name, lg in logs.items():
        if lg.first_seq != 0:
            raise SnapshotError(f"stream {name} no longer holds its first bytes")
        out[name] = b"".join(d for _, d in lg.replay(0, MAX_PREFIX))
    if sum(map(len, out.values())) >= MAX_PREFIX:
        raise SnapshotError(f"the guest wrote more than {MAX_PREFIX >> 20} MiB before the snapshot")
    return out


def save_prefix(directory: str, streams: dict[str, bytes]) -> None:
    """Write the stream prefix into a snapshot directory."""
    Path(directory, STREAMS_FILE).write_bytes(encode(StreamPrefix(dict(streams))))


def load_prefix(directory: str) -> dict[str, bytes]:
    """Read and check a snapshot's stream prefix."""
    try:
        blob = Path(directory, STREAMS_FILE).read_bytes()
    except OSError as e:
        raise SnapshotError(f"cannot read its streams: {e.strerror or e}") from None
    return decode(StreamPrefix, blob).streams


def take(
    engine: Any, directory: str, key: dict[str, str], logs: dict[str, StreamLog], drain: Any
) -> float:
    """Snapshot ``engine`` into ``directory`` with the stream prefix; returns the pause in s.

    :param drain: moves the engine's output still queued into ``logs`` (the service's
        inbox), called while the guest is paused so the prefix ends where the snapshot does.
    """
    tmp = f"{directory}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        paused = engine.snapshot(tmp, key, resume=False)
        try:
            drain()
            save_prefix(tmp, snapshot_streams(logs))
        finally:
            engine.resume()
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return float(paused)


def refuse(directory: str, why: str) -> str:
    """Discard a snapshot that could not be used; the start note that says so."""
    log.warning("snapshot %s refused: %s; booting cold", directory, why)
    discard_snapshot(directory)
    return f"start: cold boot (the snapshot was refused and discarded: {why})"


def cold(config: VmConfig) -> VmConfig:
    """``config`` without its snapshot."""
    return dataclasses.replace(config, restore_dir="", snapshot_key={})


def restore_from(config: VmConfig) -> RestoreFrom:
    """Where the KVM engine restores from; RAM is copied into the run's shared file so the
    monitors can map it, as after a boot."""
    return RestoreFrom(config.restore_dir, dict(config.snapshot_key), private_memory=False)
