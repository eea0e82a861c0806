"""The remote store's files: ``<store>/<host>/<run_id>/<file>``, appended chunk by chunk.

Each file's position (next chunk number, byte offset) is kept beside it in
``<run_id>/.store-state/<file>.json``, written after the data is fsync'd: a chunk is
acknowledged only when both are on disk. A store that died between the two finds the file
longer than its state says and cuts the unacknowledged tail (the sender sends it again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from schedlab_shared.bus.store import MAX_CHUNK, MAX_FILE, valid_name

__all__ = ("RunStore", "StoreRefused")

_STATE_DIR = ".store-state"


class StoreRefused(ValueError):
    """A chunk the store will not take (bad name, too large): the reason, one line."""


class RunStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._pos: dict[tuple[str, str, str], tuple[int, int]] = {}

    def _paths(self, host: str, run_id: str, name: str) -> tuple[Path, Path]:
        for what, v in (("host", host), ("run id", run_id), ("file", name)):
            if not valid_name(v):
                raise StoreRefused(f"{what} {v!r} is not a plain file name")
        run = self.root / host / run_id
        return run / name, run / _STATE_DIR / f"{name}.json"

    def position(self, host: str, run_id: str, name: str) -> tuple[int, int]:
        """(next chunk number, bytes held) of one file; a recovered file's unacknowledged
        tail is cut here, on first use after a start."""
        key = (host, run_id, name)
        if key in self._pos:
            return self._pos[key]
        data, state = self._paths(host, run_id, name)
        seq, offset = 0, 0
        try:
            doc = json.loads(state.read_text())
            seq, offset = int(doc["next_seq"]), int(doc["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        size = data.stat().st_size if data.exists() else 0
        if size > offset:
            with open(data, "r+b") as f:
                f.truncate(offset)
                os.fsync(f.fileno())
        elif size < offset:
            offset = size  # data lost under us (not by the store): resume from what is there
        self._pos[key] = (seq, offset)
        return seq, offset

    def append(
        self, host: str, run_id: str, name: str, seq: int, offset: int, data: bytes
    ) -> tuple[bool, int, int]:
        """Append chunk ``seq`` if it is the next one at the right offset; return
        (appended, next_seq, offset) after it."""
        next_seq, held = self.position(host, run_id, name)
        if seq != next_seq or offset != held:
            return False, next_seq, held
        if len(data) > MAX_CHUNK:
            raise StoreRefused(f"chunk of {len(data)} bytes exceeds {MAX_CHUNK}")
        if held + len(data) > MAX_FILE:
            raise StoreRefused(f"{name} would exceed {MAX_FILE} bytes")
        path, state = self._paths(host, run_id, name)
        state.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        pos = (next_seq + 1, held + len(data))
        tmp = state.with_name(state.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"next_seq": pos[0], "offset": pos[1]}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state)
        self._pos[(host, run_id, name)] = pos
        return True, pos[0], pos[1]
