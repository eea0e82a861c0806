"""The collector's files in a run directory, and the checkpoint that makes restarts exact.

Data files are only ever appended to. The checkpoint records, for one consistent moment,
each file's length, each stream's next sequence number and the frame decoder's state. A
restarted collector truncates every file to its checkpointed length and asks the VMM to
replay from the checkpointed sequence numbers: nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from schedlab_shared import run_layout
from schedlab_shared.run_layout import STREAM_FILES

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

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        with open(path) as f:
            d = json.load(f)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class RunFiles:
    """Append-only writers for the collector's files, restored to a checkpoint on open."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = run_dir / CHECKPOINT
        self.checkpoint = (
            Checkpoint.load(self.checkpoint_path) if self.checkpoint_path.exists() else Checkpoint()
        )
        self._files: dict[str, BinaryIO] = {}
        for name in FILES:
            path = run_dir / name
            f = open(path, "ab+")  # noqa: SIM115 - held for the process lifetime
            f.truncate(self.checkpoint.lengths.get(name, 0))  # drop what the checkpoint missed
            f.seek(0, os.SEEK_END)
            self._files[name] = f

    def append(self, name: str, data: bytes) -> None:
        self._files[name].write(data)

    def read_range(self, name: str, start: int) -> bytes:
        """Bytes of ``name`` from ``start`` to its end (used to refill the frame decoder)."""
        f = self._files[name]
        f.flush()
        with open(self.dir / name, "rb") as r:
            r.seek(start)
            return r.read()

    def save(self) -> None:
        """Flush the data, then atomically replace the checkpoint: data first, state second."""
        for name, f in self._files.items():
            f.flush()
            self.checkpoint.lengths[name] = f.tell()
        tmp = self.checkpoint_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(self.checkpoint), f)
        os.replace(tmp, self.checkpoint_path)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
