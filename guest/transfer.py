"""The host -> guest transfer of a run's inputs over the bulk port, after SYS_RDY.

One contract for every per-run piece (the run document, the scheduler and its libraries,
included files, payloads), so one booted guest, or one restored from a snapshot taken at
SYS_RDY, can serve any run. Frames are :mod:`guest.wire` frames of the types in
:data:`guest.wire.HOST_TO_GUEST`, in this order::

    RUN        {doc}                             the run document (guest.rundoc), first
    for each doc["files"][i], in order:
      FILE_BEGIN {index: i, kind, name, mode, size, sha256}   equal to files[i]
      FILE_CHUNK {index: i, offset, data}        contiguous from 0, <= MAX_CHUNK bytes each
      FILE_END   {index: i}                      after exactly ``size`` bytes

The guest then answers with one INPUTS_ACK: ``ok`` with, per file, the installed path, the
size and the sha256 it computed over what it wrote; or not ``ok`` with one ``error`` line.
:class:`InputsParser` is the guest's (pure) checker of that sequence; :func:`frames` the
host's generator of it; :func:`check_ack` the host's checker of the untrusted answer.
Standard library and msgpack only.
"""

from __future__ import annotations

from collections import namedtuple

from guest import rundoc, wire
from guest.spec import SpecError
from guest.wire import FrameType

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from guest.wire import Frame

__all__ = (
    "CHUNK",
    "MAX_CHUNK",
    "MAX_ERROR",
    "Ack",
    "AckedFile",
    "InputsParser",
    "TransferError",
    "ack_error",
    "ack_ok",
    "check_ack",
    "frames",
)

#: Bytes of file data the host puts in one FILE_CHUNK.
CHUNK = 64 << 10
#: The largest FILE_CHUNK data the guest accepts.
MAX_CHUNK = 256 << 10
#: The longest error text either side keeps from the other.
MAX_ERROR = 1000


class TransferError(ValueError):
    """The inputs broke the contract; the message is one line for the user."""


class InputsParser:
    """Checks the host's frames against the contract, one at a time (no I/O).

    :meth:`feed` returns what the frame means, as a tuple: ``("run", RunDoc)``,
    ``("begin", index, FileEntry)``, ``("chunk", index, data)``, ``("end", index)``; after
    the last file's END (or a RUN without files) :attr:`done` is True.

    :raises TransferError: on the first frame out of order, out of bounds or malformed.
    """

    def __init__(self) -> None:
        self.doc: rundoc.RunDoc | None = None
        self.done = False
        self._index = 0  # the file expected next (or in progress)
        self._open = False  # FILE_BEGIN seen for _index
        self._offset = 0
        self.bytes = 0  # file bytes accepted

    def feed(self, frame: Frame) -> tuple[Any, ...]:
        if self.done:
            raise TransferError(f"{frame.type.name} frame after the last input")
        p = frame.payload
        if self.doc is None:
            if frame.type is not FrameType.RUN:
                raise TransferError(f"expected RUN first, got {frame.type.name}")
            try:
                self.doc = rundoc.validate(p["doc"])
            except SpecError as e:
                raise TransferError(f"bad run document: {e}") from None
            self.done = not self.doc.files
            return ("run", self.doc)
        if frame.type is FrameType.RUN:
            raise TransferError("a second RUN frame")
        index = p["index"]
        if index != self._index:
            raise TransferError(f"{frame.type.name} for file {index}, expected file {self._index}")
        entry = self.doc.files[index]
        if frame.type is FrameType.FILE_BEGIN:
            return self._begin(p, entry)
        if not self._open:
            raise TransferError(f"{frame.type.name} for file {index} before its FILE_BEGIN")
        if frame.type is FrameType.FILE_CHUNK:
            return self._chunk(p, entry)
        return self._end(entry)

    def _begin(self, p: dict[str, Any], entry: rundoc.FileEntry) -> tuple[Any, ...]:
        if self._open:
            raise TransferError(f"a second FILE_BEGIN for file {self._index}")
        fields = {k: v for k, v in p.items() if k != "index"}
        try:
            got = rundoc.check_file(fields, f"FILE_BEGIN[{self._index}]")
        except SpecError as e:
            raise TransferError(str(e)) from None
        if got != entry:
            raise TransferError(
                f"FILE_BEGIN {self._index} ({got.kind} {got.name!r}, {got.size} bytes) differs "
                f"from files[{self._index}] of the run document"
            )
        self._open, self._offset = True, 0
        return ("begin", self._index, entry)

    def _chunk(self, p: dict[str, Any], entry: rundoc.FileEntry) -> tuple[Any, ...]:
        data, offset = p["data"], p["offset"]
        if offset != self._offset:
            raise TransferError(f"file {entry.name!r}: chunk at {offset}, expected {self._offset}")
        if len(data) > MAX_CHUNK:
            raise TransferError(f"file {entry.name!r}: chunk of {len(data)} bytes > {MAX_CHUNK}")
        if offset + len(data) > entry.size:
            raise TransferError(f"file {entry.name!r}: more than its {entry.size} bytes")
        self._offset += len(data)
        self.bytes += len(data)
        return ("chunk", self._index, data)

    def _end(self, entry: rundoc.FileEntry) -> tuple[Any, ...]:
        if self._offset != entry.size:
            raise TransferError(
                f"file {entry.name!r}: truncated, {self._offset} of {entry.size} bytes"
            )
        index = self._index
        self._index += 1
        self._open = False
        assert self.doc is not None
        self.done = self._index == len(self.doc.files)
        return ("end", index)


def frames(
    doc: dict[str, Any], open_file: Callable[[int], Any], chunk: int = CHUNK, check: bool = True
) -> Iterator[bytes]:
    """The host side: the encoded frames of one transfer, produced lazily.

    :param doc: a run document (validated here).
    :param open_file: ``index -> binary file object`` for ``doc["files"][index]``; read in
        ``chunk`` pieces, so memory stays bounded whatever the file size.
    :param check: validate ``doc`` first; False only for a test hook that sends a document
        the guest must refuse (its files must still be well-formed).
    :raises TransferError: a file shorter or longer than the document says.
    """
    if check:
        rd_files = rundoc.validate(doc).files
    else:
        rd_files = tuple(rundoc.check_file(f, "files") for f in doc.get("files", []))
    yield wire.encode_frame(FrameType.RUN, {"doc": doc})
    for i, entry in enumerate(rd_files):
        yield wire.encode_frame(FrameType.FILE_BEGIN, {"index": i, **entry.as_map()})
        with open_file(i) as f:
            offset = 0
            while offset < entry.size:
                data = f.read(min(chunk, entry.size - offset))
                if not data:
                    raise TransferError(f"{entry.name}: shorter than {entry.size} bytes (changed?)")
                yield wire.encode_frame(
                    FrameType.FILE_CHUNK, {"index": i, "offset": offset, "data": data}
                )
                offset += len(data)
            if f.read(1):
                raise TransferError(f"{entry.name}: longer than {entry.size} bytes (changed?)")
        yield wire.encode_frame(FrameType.FILE_END, {"index": i})


# -- the guest's answer -------------------------------------------------------------------

#: One installed file as the guest reports it.
AckedFile = namedtuple("AckedFile", "kind name path size sha256")
#: The host's checked view of an INPUTS_ACK (``stats``: the guest's counters, ints only).
Ack = namedtuple("Ack", "ok error files bytes recv_ms entropy stats", defaults=({},))


def ack_ok(
    installed: list[tuple[rundoc.FileEntry, str]],
    nbytes: int,
    recv_ns: int,
    entropy: str,
    stats: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The guest's INPUTS_ACK payload for a complete transfer.

    :param installed: each file with the sha256 computed over what was written.
    :param entropy: how the entropy went in: ``ioctl``, ``write`` or ``failed: ...``.
    :param stats: counters of the receive (``reads``, ``wait_ns``), for benchmarks.
    """
    return {
        "stats": dict(stats or {}),
        "ok": True,
        "error": "",
        "files": [
            {"kind": e.kind, "name": e.name, "path": e.path, "size": e.size, "sha256": digest}
            for e, digest in installed
        ],
        "bytes": nbytes,
        "recv_ns": recv_ns,
        "entropy": entropy[:MAX_ERROR],
    }


def ack_error(error: str) -> dict[str, Any]:
    """The guest's INPUTS_ACK payload for a refused or failed transfer."""
    return {"ok": False, "error": error[:MAX_ERROR], "files": []}


def check_ack(payload: Any, sent: list[rundoc.FileEntry] | tuple[rundoc.FileEntry, ...]) -> Ack:
    """The host side: check an INPUTS_ACK payload from the (untrusted) guest.

    A positive answer must list exactly the files sent, at their install paths, with the
    sizes and digests sent; anything else is turned into a negative :class:`Ack` whose
    ``error`` says what the guest got wrong.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("ok"), bool):
        return Ack(False, "malformed INPUTS_ACK from the guest", (), 0, 0.0, "")
    error = payload.get("error")
    error = error[:MAX_ERROR] if isinstance(error, str) else "malformed error text"
    if not payload["ok"]:
        return Ack(False, error or "the guest refused the inputs (no reason given)", (), 0, 0.0, "")
    files = payload.get("files")
    if not isinstance(files, list) or len(files) != len(sent):
        got = len(files) if isinstance(files, list) else "no"
        return Ack(False, f"the guest acknowledged {got} files of {len(sent)}", (), 0, 0.0, "")
    acked = []
    for entry, f in zip(sent, files, strict=True):
        want = {
            "kind": entry.kind,
            "name": entry.name,
            "path": entry.path,
            "size": entry.size,
            "sha256": entry.sha256,
        }
        if f != want:
            return Ack(
                False, f"the guest's copy of {entry.name!r} differs: {str(f)[:300]}", (), 0, 0.0, ""
            )
        acked.append(AckedFile(**want))
    nbytes, recv_ns = payload.get("bytes"), payload.get("recv_ns")
    nbytes = nbytes if isinstance(nbytes, int) and 0 <= nbytes <= rundoc.MAX_TOTAL_BYTES else 0
    recv_ns = recv_ns if isinstance(recv_ns, int) and 0 <= recv_ns < 1 << 62 else 0
    entropy = payload.get("entropy")
    entropy = entropy[:MAX_ERROR] if isinstance(entropy, str) else ""
    raw = payload.get("stats")
    stats = {}
    if isinstance(raw, dict):
        for key in ("reads", "wait_ns"):
            v = raw.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 62:
                stats[key] = v
    return Ack(True, "", tuple(acked), nbytes, recv_ns / 1e6, entropy, stats)
