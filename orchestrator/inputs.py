"""The host side of a run's inputs: build the run document, send it and the files to the
guest over the bulk port after SYS_RDY, and check the guest's INPUTS_ACK.

The contract is :mod:`guest.transfer` (frames) and :mod:`guest.rundoc` (the document),
shared with the guest. Sending goes through ``vmm.bulk_write`` (flow-controlled, resend-safe
by stream offset), in bounded slices so the session keeps watching its processes while a
large file goes in::

    inputs = prepare(req.guest_spec(), files=[HostFile("include", Path("big.bin"))])
    sender = InputSender(vmm_client, inputs)
    while not sender.step(0.2):   # after SYS_RDY
        ...
    ack = sender.poll_ack(collector_client)   # None until the guest answered
"""

from __future__ import annotations

import hashlib
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from guest import rundoc, transfer
from guest.rundoc import FileEntry, Scheduler
from guest.spec import RunSpec, SpecError
from guest.transfer import Ack, TransferError
from guest.wire import FrameType
from schedlab_shared.bus import collector as collector_proto
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError, Status

__all__ = ("HostFile", "InputSender", "InputsError", "RunInputs", "check_host_file", "prepare")

#: Bytes per vmm.bulk_write request (a few frames; well under MAX_BULK_WRITE).
WRITE_BYTES = 256 << 10
#: Bus timeouts in a row before the VMM counts as unreachable.
_MAX_TIMEOUTS = 5
_ACK_PAGE = 1000


class InputsError(Exception):
    """The run's inputs could not be prepared or delivered; one line for the user."""


@dataclass(frozen=True)
class HostFile:
    """A host file the guest gets at ``/run/schedlab/inputs/<kind>/<name>``.

    :param kind: one of :data:`guest.rundoc.KINDS`.
    :param name: the guest file name (default: the host file's).
    :param mode: permission bits (default: the host file's; a scheduler gets 0o755).
    """

    kind: str
    path: Path
    name: str = ""
    mode: int | None = None

    @property
    def guest_path(self) -> str:
        return rundoc.install_path(self.kind, self.name or self.path.name)


@dataclass(frozen=True)
class RunInputs:
    """A validated run document and the host file behind each of its ``files``."""

    doc: dict[str, Any]
    files: tuple[FileEntry, ...]
    paths: tuple[Path, ...]
    checked: bool = True  # False only for a test hook's document the guest must refuse

    @property
    def file_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _sha256(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def check_host_file(hf: HostFile) -> tuple[str, int]:
    """Check a host file before anything boots: ``(guest name, mode)``.

    :raises InputsError: a bad kind or name, a missing, odd or oversized file.
    """
    name = hf.name or hf.path.name
    where = f"{hf.kind} file {hf.path}"
    if hf.kind not in rundoc.KINDS:
        raise InputsError(f"{where}: kind {hf.kind!r} is not one of {', '.join(rundoc.KINDS)}")
    try:
        rundoc.check_name(name, "name")
        st = hf.path.stat()
    except SpecError as e:
        raise InputsError(f"{where}: {e}; rename it") from None
    except OSError as e:
        raise InputsError(f"{where}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputsError(f"{where}: not a regular file")
    if st.st_size > rundoc.MAX_FILE_BYTES:
        raise InputsError(f"{where}: {st.st_size} bytes > {rundoc.MAX_FILE_BYTES}")
    mode = hf.mode if hf.mode is not None else stat.S_IMODE(st.st_mode) & 0o777
    if hf.kind == "scheduler":
        mode |= 0o755
    return name, mode


def _entry(hf: HostFile) -> FileEntry:
    name, mode = check_host_file(hf)
    try:
        digest, size = _sha256(hf.path)
    except OSError as e:
        raise InputsError(f"{hf.kind} file {hf.path}: {e.strerror}") from None
    return FileEntry(hf.kind, name, mode, size, digest)


#: The Hooks.corrupt_spec field: a hooks field the guest does not know, so it must refuse.
CORRUPT_SPEC_FIELD = "corrupt_spec_hook"


def corrupted(inputs: RunInputs) -> RunInputs:
    """The same inputs with a run document the guest must refuse (the corrupt_spec hook)."""
    hooks = {**inputs.doc.get("hooks", {}), CORRUPT_SPEC_FIELD: 1}
    return replace(inputs, doc={**inputs.doc, "hooks": hooks}, checked=False)


def prepare(
    spec: RunSpec,
    files: Iterable[HostFile] = (),
    scheduler: Scheduler | None = None,
    run_id: str = "",
    session: rundoc.Session | None = None,
    scenario: dict[str, Any] | None = None,
) -> RunInputs:
    """Hash the files and build the run document (with fresh entropy).

    :param scenario: a scenario document the guest plays (``Scenario.to_document``); None:
        ``spec``'s cgroup spinners.

    :raises InputsError: a missing, odd or oversized file, a bad name, a bad document.
    """
    hfs = tuple(files)
    entries = tuple(_entry(h) for h in hfs)
    try:
        doc = rundoc.build(
            spec,
            files=entries,
            scheduler=scheduler,
            run_id=run_id,
            session=session,
            scenario=scenario,
        )
    except SpecError as e:
        raise InputsError(f"run document: {e}") from None
    return RunInputs(doc, entries, tuple(h.path for h in hfs))


@dataclass
class SendStats:
    """What a sender did, for the result document."""

    bytes: int = 0  # bulk bytes the VMM took (frames, headers included)
    writes: int = 0
    started_at: float = 0.0  # host wall clock of the first write
    sent_at: float = 0.0  # ... when the last byte was taken
    acked_at: float = 0.0  # ... when the collector decoded the INPUTS_ACK
    resends: int = 0


class InputSender:
    """Sends one :class:`RunInputs` through the VMM, a bounded slice per :meth:`step`.

    Memory stays bounded by one write plus one frame whatever the file sizes: frames are
    produced lazily from the files (:func:`guest.transfer.frames`).
    """

    def __init__(self, vmm: BusClient, inputs: RunInputs, write_bytes: int = WRITE_BYTES) -> None:
        self.vmm = vmm
        self.inputs = inputs
        self.write_bytes = min(write_bytes, vmm_proto.MAX_BULK_WRITE)
        self._frames: Iterator[bytes] = transfer.frames(
            inputs.doc, lambda i: open(inputs.paths[i], "rb"), check=inputs.checked
        )
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._exhausted = False
        self._timeouts = 0
        self._msg_index = 0
        self.done = False
        self.stats = SendStats()

    def _fill(self) -> None:
        while not self._exhausted and len(self._buf) < self.write_bytes:
            try:
                self._buf += next(self._frames)
            except StopIteration:
                self._exhausted = True
            except (TransferError, OSError) as e:
                raise InputsError(f"reading the inputs: {e}") from None

    def step(self, budget_s: float) -> bool:
        """Send for up to ``budget_s`` seconds; return True once the VMM took every byte.

        :raises InputsError: the VMM refused the bytes (VM gone) or stopped answering.
        """
        end = time.monotonic() + budget_s
        while not self.done:
            self._fill()
            if not self._buf:
                self.done = True
                self.stats.sent_at = time.time()
                break
            left = end - time.monotonic()
            if left <= 0:
                break
            self._write(min(left, vmm_proto.MAX_BULK_WAIT_S))
        return self.done

    def _write(self, wait_s: float) -> None:
        data = bytes(self._buf[: self.write_bytes])
        if not self.stats.started_at:
            self.stats.started_at = time.time()
        try:
            r = self.vmm.request(
                vmm_proto.BulkWrite(data, offset=self._base, timeout_s=wait_s),
                timeout_s=wait_s + 2.0,
            )
        except BusError as e:
            if e.status is not Status.TIMEOUT:
                raise InputsError(f"the VMM did not take the inputs: {e.reason}") from None
            self._timeouts += 1
            self.stats.resends += 1
            if self._timeouts >= _MAX_TIMEOUTS:
                raise InputsError(f"the VMM did not answer {self._timeouts} bulk writes") from None
            return  # the same bytes again, at the same offset: the VMM skips what it took
        self._timeouts = 0
        taken = r.offset - self._base
        if not 0 <= taken <= len(data):
            raise InputsError(f"the VMM's bulk offset {r.offset} does not match {self._base}")
        del self._buf[:taken]
        self._base = r.offset
        self.stats.bytes = r.offset
        self.stats.writes += 1

    def poll_ack(self, collector: BusClient) -> Ack | None:
        """The guest's INPUTS_ACK, checked against what was sent; None while none came."""
        while True:
            page = collector.request(collector_proto.Messages(self._msg_index, _ACK_PAGE)).messages
            for m in page:
                self._msg_index += 1
                if isinstance(m, dict) and m.get("type") == FrameType.INPUTS_ACK.name:
                    self.stats.acked_at = float(m.get("host_time") or time.time())
                    return transfer.check_ack(m.get("payload"), self.inputs.files)
            if len(page) < _ACK_PAGE:
                return None

    def summary(self, ack: Ack | None) -> dict[str, Any]:
        """The ``inputs`` section of the result document."""
        s = self.stats
        seconds = (s.acked_at or s.sent_at) - s.started_at if s.started_at else 0.0
        out: dict[str, Any] = {
            "files": [
                {"kind": f.kind, "name": f.name, "path": f.path, "size": f.size, "sha256": f.sha256}
                for f in self.inputs.files
            ],
            "file_bytes": self.inputs.file_bytes,
            "wire_bytes": s.bytes,
            "writes": s.writes,
            "resends": s.resends,
            "transfer_ms": round(seconds * 1000, 1),
            "mb_per_s": round(s.bytes / seconds / 1e6, 2) if seconds > 0 else None,
            "acked": bool(ack and ack.ok),
        }
        if ack is not None:
            out["guest_recv_ms"] = round(ack.recv_ms, 1)
            if "wait_ns" in ack.stats:
                out["guest_wait_ms"] = round(ack.stats["wait_ns"] / 1e6, 1)
                out["guest_reads"] = ack.stats.get("reads", 0)
            out["entropy"] = ack.entropy
            if not ack.ok:
                out["error"] = ack.error
        return out
