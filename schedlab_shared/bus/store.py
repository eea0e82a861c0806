"""Contract of the remote run store (``schedlab collect``): runs' collectors forward their run
logs to it over CURVE-authenticated ZeroMQ, each file as numbered chunks.

The store keys everything by the sender's authenticated host (from its public key, never
from the message), the run id and the file name. A chunk is appended only when its
``seq`` is the next one and its ``offset`` the file's current size; every reply says
where the store stands, so a sender that reconnects (or a store that restarted) resumes
from there. A chunk is acknowledged only once it is on disk (fsync'd with its state).
"""

from __future__ import annotations

import re

from .codec import Message, message

__all__ = (
    "MAX_CHUNK",
    "MAX_FILE",
    "StoreAppend",
    "StoreAppendReply",
    "StoreResume",
    "StoreResumeReply",
    "valid_name",
)

MAX_CHUNK = 1 << 20  # bytes of one chunk
MAX_FILE = 4 << 30  # bytes of one stored file: a run log, not a disk filler
_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}$")


def valid_name(name: object) -> bool:
    """A run id or file name the store accepts: one path component, no leading dot."""
    return isinstance(name, str) and bool(_NAME.match(name))


@message("store.resume.reply")
class StoreResumeReply(Message):
    """``{files: {name: {next_seq, offset}}}``: where the store stands for each file asked."""

    files: dict


@message("store.resume", reply=StoreResumeReply)
class StoreResume(Message):
    """Request ``{run_id, files}``: the store's position in each of these files of the run."""

    run_id: str
    files: list


@message("store.append.reply")
class StoreAppendReply(Message):
    """``{accepted, next_seq, offset}``: whether this chunk was appended (a duplicate or a
    chunk out of order is not), and the file's position after it."""

    accepted: bool
    next_seq: int
    offset: int


@message("store.append", reply=StoreAppendReply)
class StoreAppend(Message):
    """Request ``{run_id, file, seq, offset, data}``: chunk ``seq`` of ``file``, which starts at
    byte ``offset`` (at most :data:`MAX_CHUNK` bytes)."""

    run_id: str
    file: str
    seq: int
    offset: int
    data: bytes
