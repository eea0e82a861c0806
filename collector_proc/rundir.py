"""The collector's files in a run directory, and the checkpoint that makes restarts exact.

Data files are only ever appended to. The checkpoint records, for one consistent moment
(between two chunks, never inside one), each file's length, each stream's next sequence
number and the frame decoder's state. It is replaced atomically (write a temporary file,
then rename over the old one), so a SIGKILL at any point leaves either the old or the new
checkpoint. A restarted collector truncates every file to its checkpointed length and asks
the VMM to replay from the checkpointed sequence numbers: nothing is lost and nothing is
written twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from schedlab_shared import run_layout
from schedlab_shared.run_layout import STREAM_FILES

from .crashpoint import crashpoint

__all__ = ("FILES", "STREAM_FILES", "Checkpoint", "RunFiles")

# The names are the run directory's layout (schedlab_shared.run_layout), read by others.
FILES = run_layout.COLLECTOR_FILES
CHECKPOINT = run_layout.COLLECTOR_STATE


@dataclass
class Checkpoint:
    next_seq: dict[str, int] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    decoder_consumed: int = 0  # bulk stream offset up to which frames were decoded
    decoder_stats: dict[str, int] = field(default_factory=dict)
    sys_rdy: float = 0.0
    result: dict[str, Any] | None = None
    exit_code: int | None = None
    vm_exited: bool = False
    vm_exit_reason: str = ""
    vm_exit_detail: str = ""
    complete: bool = False
    gaps: int = 0  # chunks the VMM no longer retained when asked (counted, never silent)
    rejected: int = 0  # frames refused after a valid crc (recorded in rejected.jsonl up to a bound)
    internal_errors: int = 0  # frames the collector failed to handle (a bug; counted, skipped)
    #: the scheduler under test as the guest reported it: SCHED_ATTACH, SCHED_EXIT and
    #: SCHED_STOP payloads (``attach``, ``exit``, ``stop``), SCHED_LOG's ``dropped`` bytes and
    #: ``eof`` per stream (``log``); see :mod:`collector_proc.sched`.
    sched: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        with open(path) as f:
            d = json.load(f)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class RunFiles:
    """Append-only writers for the collector's files, restored to a checkpoint on open.

    :attr:`sizes` is each file's logical length (written bytes, buffered or not);
    :meth:`rollback` cuts files back to an earlier :meth:`mark`.
    """

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = run_dir / CHECKPOINT
        self._tmp = self.checkpoint_path.with_suffix(".tmp")
        self._tmp.unlink(missing_ok=True)  # a save killed before its rename: never read
        self.checkpoint = (
            Checkpoint.load(self.checkpoint_path) if self.checkpoint_path.exists() else Checkpoint()
        )
        self._files: dict[str, BinaryIO] = {}
        self.sizes: dict[str, int] = {}
        for name in FILES:
            path = run_dir / name
            f = open(path, "ab+")  # noqa: SIM115 - held for the process lifetime
            size = self.checkpoint.lengths.get(name, 0)
            f.truncate(size)  # drop what the checkpoint missed
            f.seek(0, os.SEEK_END)
            self._files[name] = f
            self.sizes[name] = size

    def append(self, name: str, data: bytes) -> None:
        self._files[name].write(data)
        self.sizes[name] += len(data)

    def mark(self) -> dict[str, int]:
        """The current lengths, for :meth:`rollback`."""
        return dict(self.sizes)

    def rollback(self, mark: dict[str, int]) -> None:
        """Cut every file back to its length at ``mark``."""
        for name, size in mark.items():
            if self.sizes[name] != size:
                f = self._files[name]
                f.flush()
                f.truncate(size)
                f.seek(0, os.SEEK_END)
                self.sizes[name] = size

    def read_range(self, name: str, start: int, end: int | None = None) -> bytes:
        """Bytes of ``name`` from ``start`` to ``end`` (default: its end)."""
        self._files[name].flush()
        with open(self.dir / name, "rb") as r:
            r.seek(start)
            return r.read() if end is None else r.read(max(0, end - start))

    def save(self) -> None:
        """Flush the data, then atomically replace the checkpoint: data first, state second."""
        for f in self._files.values():
            f.flush()
        self.checkpoint.lengths = dict(self.sizes)
        crashpoint("save.flushed")
        text = json.dumps(asdict(self.checkpoint)).encode()
        with open(self._tmp, "wb") as f:
            f.write(text[: len(text) // 2])
            f.flush()
            crashpoint("save.tmp_half")  # a torn temporary file must never be read
            f.write(text[len(text) // 2 :])
        crashpoint("save.tmp_written")
        os.replace(self._tmp, self.checkpoint_path)
        crashpoint("save.replaced")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
