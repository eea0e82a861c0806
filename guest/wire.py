"""Frame format on the virtio-console bulk port, both directions.

This module is the whole framing contract between the guest init and the host (collector
and input sender); both import it, so it depends on the standard library and msgpack only.
Guest -> host frames are the guest's reports; host -> guest frames carry the run's inputs
after SYS_RDY (:mod:`guest.transfer` defines their sequence and bounds).

A frame is a 12-byte header followed by a msgpack map::

    offset size field
    0      2    magic  b"SL"
    2      1    version (VERSION)
    3      1    type   (FrameType)
    4      4    payload length, little endian, <= MAX_FRAME
    8      4    crc32 over header bytes 0..7 followed by the payload

>>> f = decode_frame(encode_frame(FrameType.EXIT, {"code": 0}))
>>> (f.type, f.payload)
(<FrameType.EXIT: 7>, {'code': 0})

The host treats these bytes as untrusted: :class:`FrameDecoder` never raises on input,
resynchronises on the magic after garbage, and keeps at most one frame buffered. Each
payload is checked against its type's entry in :data:`SCHEMAS` (see :mod:`guest.schema`)
before the host uses it; a frame that fails is skipped and counted by reason.

Adding a frame type is two lines: a member of :class:`FrameType` and its schema, e.g.
``FrameType.XFER_DATA: {"id": Int(0), "data": bytes},`` in :data:`SCHEMAS` (the table
test fails until both exist).
"""

from __future__ import annotations

import binascii
import enum
import struct
from collections import namedtuple

import msgpack

from guest.scenario import record as scenario_record
from guest.schema import (
    KINDS,
    MAX_CONTAINERS,
    MAX_ITEMS,
    Int,
    ListOf,
    OneOf,
    Opt,
    SchemaError,
    Str,
    spec,
)
from guest.workreport import REPORT

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    from typing import Any

__all__ = (
    "HEADER",
    "HEADER_SIZE",
    "LOG_LEVELS",
    "MAGIC",
    "MAX_FRAME",
    "PANIC_PREFIX",
    "SCHEMAS",
    "SHELL_CHUNK",
    "SHELL_PORT_NAME",
    "SHELL_TO_GUEST",
    "SHELL_TO_HOST",
    "STDIO_CHUNK",
    "VERSION",
    "DecoderStats",
    "ExitCode",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "GUEST_TO_HOST",
    "HOST_TO_GUEST",
    "WireError",
    "check_payload",
    "decode_frame",
    "encode_frame",
)

MAGIC = b"SL"
VERSION = 1
HEADER = struct.Struct("<2sBBII")
HEADER_SIZE = HEADER.size  # 12
_PREFIX = struct.Struct("<2sBBI")  # the 8 header bytes covered by the crc
MAX_FRAME = 1 << 20
#: Largest STDOUT/STDERR chunk the guest sends in one frame.
STDIO_CHUNK = 64 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Starts every line of crash text the guest init writes to COM2; the host extracts it so.
PANIC_PREFIX = "PANIC: "


class FrameType(enum.IntEnum):
    """Frame types; the value is the header's type byte."""

    SYS_RDY = 1  #: guest init is up: kernel, cpus, boot_ns
    PHASE = 2  #: lifecycle point: name, t_ns
    STDOUT = 3  #: data (bytes)
    STDERR = 4  #: data (bytes)
    LOG = 5  #: level (one of LOG_LEVELS), msg
    RESULT = 6  #: passed, reason, plus the scenario's structured result
    EXIT = 7  #: code: the guest's final exit status
    DUMP = 8  #: source (what was read), data (bytes)
    # Guest -> host, the sched_ext lifecycle (guest.scx): 20-31.
    SCHED_LOG = 20  #: stream (stdout|stderr), data, seq, dropped (bytes so far), eof
    SCHED_ATTACH = 21  #: status, attached, ops, message, attach_ms, pid, exit_status
    SCHED_EXIT = 22  #: t_ns (CLOCK_BOOTTIME), trigger (died|disabled), exit, exit_status
    SCHED_STOP = 23  #: status, detached, killed, problems, exit_status, state, exit
    # Guest -> host replies to host frames: 32-63.
    INPUTS_ACK = 32  #: ok, error, files: the guest's verdict on the run's inputs
    # Host -> guest (the run's inputs, guest.transfer): 64-127.
    RUN = 64  #: doc: the run document (guest.rundoc), always the first host frame
    FILE_BEGIN = 65  #: index, kind, name, mode, size, sha256 of the next file
    FILE_CHUNK = 66  #: index, offset, data (bytes)
    FILE_END = 67  #: index: the file is complete
    # The shell port (guest.shellphase), guest -> host: 40-47.
    SHELL_READY = 40  #: pid, tty: the command runs
    SHELL_OUT = 41  #: data (bytes): the command's stdout (its pty, interactive)
    SHELL_ERR = 42  #: data (bytes): its stderr (exec only; a pty merges both)
    SHELL_EXIT = 43  #: code (exit status, or -1), signal (the killing signal, or 0)
    # The shell port, host -> guest: 80-87.
    SHELL_IN = 80  #: data (bytes) for the command's stdin (its pty, interactive)
    SHELL_EOF = 81  #: stdin ends (exec: its pipe is closed)
    SHELL_WINCH = 82  #: rows, cols: the host terminal's new size
    SHELL_SIGNAL = 83  #: signal: sent to the command's process group


#: Frame types of the shell port (its own virtio-console port, :data:`SHELL_PORT_NAME`),
#: by direction; neither set is accepted on the bulk port.
SHELL_TO_HOST = frozenset(
    {FrameType.SHELL_READY, FrameType.SHELL_OUT, FrameType.SHELL_ERR, FrameType.SHELL_EXIT}
)
SHELL_TO_GUEST = frozenset(
    {FrameType.SHELL_IN, FrameType.SHELL_EOF, FrameType.SHELL_WINCH, FrameType.SHELL_SIGNAL}
)
#: Frame types the host sends; the guest accepts only these, the host only the others.
HOST_TO_GUEST = frozenset(
    {FrameType.RUN, FrameType.FILE_BEGIN, FrameType.FILE_CHUNK, FrameType.FILE_END}
)
GUEST_TO_HOST = frozenset(set(FrameType) - HOST_TO_GUEST - SHELL_TO_HOST - SHELL_TO_GUEST)
#: The name of the shell port (a virtio-serial port) the VMM offers and the guest looks for.
SHELL_PORT_NAME = "org.schedlab.shell"
#: Largest SHELL_OUT/SHELL_ERR/SHELL_IN data in one frame.
SHELL_CHUNK = 32 * 1024


class ExitCode(enum.IntEnum):
    """Values of the EXIT frame's ``code``: how the guest run ended.

    A guest that crashes sends no EXIT frame (its ``PANIC:`` text goes to COM2 only), so
    the host can tell a lost guest from a failed test.
    """

    OK = 0  #: the test ran and passed
    TEST_FAILED = 1  #: the test ran and its verdict failed
    BAD_SPEC = 2  #: the run's inputs (run document, files) were invalid or did not arrive
    BAD_IMAGE = 3  #: the initramfs sentinel was missing or did not match (truncated image)
    SETUP_FAILED = 4  #: mounts, cgroups or workers could not be set up
    SHUTDOWN = 5  #: the host asked for shutdown before the test finished


_WORKER = REPORT  # one worker's report, segments per step (guest.workreport)
_CHECK = {"name": str, "passed": bool, "detail": str}
_MODULE = {"name": str, "status": str, "error": str}
# guest.scx.exit_parse.SchedExit.as_map(): how a sched_ext scheduler ended
_SCX_EXIT = {
    "kind": Str(32),
    "code": Int(-1, 1 << 31),
    "reason": Str(256),
    "message": Str(4096),
    "ops": Str(256),
    "source": OneOf("kmsg", "stderr", "kmsg+stderr", ""),
    "backtrace": ListOf(Str(256), 64),
    "task": Opt({"comm": Str(64), "pid": Int(0)}),
    "stall_s": Opt(float),
}

# The run's inputs (guest.transfer); bounds as in guest.rundoc, which checks the rest.
_XFER_FILES = 256
_XFER_TEXT = 1000
_ACKED = {"kind": Str(16), "name": Str(128), "path": Str(1024), "size": Int(0), "sha256": Str(64)}

#: The payload schema of each frame type (the shorthand of :mod:`guest.schema`): declared
#: fields are checked, others allowed if they map to JSON. One line per type.
SCHEMAS: dict[FrameType, Any] = {
    FrameType.SYS_RDY: {
        "kernel": str,
        "cpus": Int(1, 1 << 16),
        "boot_ns": Int(0),
        "main_ns": Opt(Int(0)),
        "modules": Opt([_MODULE]),
    },
    FrameType.PHASE: {"name": str, "t_ns": Int(0)},
    FrameType.STDOUT: {"data": bytes},
    FrameType.STDERR: {"data": bytes},
    FrameType.LOG: {"level": OneOf(*LOG_LEVELS), "msg": str},
    FrameType.RESULT: {
        "passed": bool,
        "reason": str,
        "scenario": Opt(str),
        "stopped": Opt(bool),
        "spec": Opt({}),
        "workers": Opt(ListOf(_WORKER, 1024)),
        "verdicts": Opt([_CHECK]),
        "cgroups": Opt([{"cgroup": str}]),
        "steps": Opt(ListOf(scenario_record.STEP, scenario_record.MAX_STEPS)),
        "backdrop": Opt(scenario_record.BACKDROP),
        "fairness_exempt": Opt(ListOf(Str(200), 4096)),
    },
    FrameType.EXIT: {"code": int},
    FrameType.DUMP: {"source": str, "data": bytes},
    FrameType.INPUTS_ACK: {
        "ok": bool,
        "error": Str(_XFER_TEXT),
        "files": ListOf(_ACKED, _XFER_FILES),
        "bytes": Opt(Int(0)),
        "recv_ns": Opt(Int(0)),
        "entropy": Opt(Str(_XFER_TEXT)),
        "stats": Opt({"reads": Opt(Int(0)), "wait_ns": Opt(Int(0))}),
    },
    FrameType.RUN: {"doc": dict},  # the run document: guest.rundoc.validate checks it all
    FrameType.FILE_BEGIN: {
        "index": Int(0, _XFER_FILES - 1),
        "kind": Str(16),
        "name": Str(128),
        "mode": Int(0, 0o777),
        "size": Int(0),
        "sha256": Str(64),
    },
    FrameType.FILE_CHUNK: {"index": Int(0, _XFER_FILES - 1), "offset": Int(0), "data": bytes},
    FrameType.FILE_END: {"index": Int(0, _XFER_FILES - 1)},
    FrameType.SHELL_READY: {"pid": Int(0), "tty": bool},
    FrameType.SHELL_OUT: {"data": Str(SHELL_CHUNK, bytes)},
    FrameType.SHELL_ERR: {"data": Str(SHELL_CHUNK, bytes)},
    FrameType.SHELL_EXIT: {"code": Int(-1, 255), "signal": Int(0, 64)},
    FrameType.SHELL_IN: {"data": Str(SHELL_CHUNK, bytes)},
    FrameType.SHELL_EOF: {},
    FrameType.SHELL_WINCH: {"rows": Int(1, 4096), "cols": Int(1, 4096)},
    FrameType.SHELL_SIGNAL: {"signal": Int(1, 64)},
    FrameType.SCHED_LOG: {
        "stream": OneOf("stdout", "stderr"),
        "data": Str(64 * 1024, bytes),
        "seq": Int(1),
        "dropped": Int(0),
        "eof": bool,
    },
    FrameType.SCHED_ATTACH: {
        "status": Str(32),
        "attached": bool,
        "ops": Str(256),
        "message": Str(16000),
        "attach_ms": Opt(float),
        "pid": Int(0),
        "exit_status": Str(128),
        "state": Str(32),
    },
    FrameType.SCHED_EXIT: {
        "t_ns": Int(0),
        "trigger": OneOf("died", "disabled"),
        "state": Str(32),
        "exit_status": Str(128),
        "ops": Str(256),
        "dump_bytes": Int(0),
        "headline": Str(8192),
        "exit": Opt(_SCX_EXIT),
    },
    FrameType.SCHED_STOP: {
        "status": Str(32),
        "detached": bool,
        "killed": bool,
        "problems": ListOf(Str(1024), 16),
        "exit_status": Str(128),
        "state": Str(32),
        "wait_ms": float,
        "exit": Opt(_SCX_EXIT),
    },
}
_compiled: dict[int, Any] = {}  # SCHEMAS compiled on first use (a later entry is seen too)


class WireError(ValueError):
    """A frame that does not satisfy the contract.

    :param kind: which check failed, one of ``bad_magic``, ``bad_version``, ``oversize``,
        ``truncated``, ``bad_crc``, ``unknown_type``, ``bad_payload`` (not a msgpack map),
        ``trailing``, or a payload check's :data:`guest.schema.KINDS` (``bad_field``,
        ``ext_type``, ``bad_key``, ``too_deep``, ``too_large``, ``non_finite``).
    :param field: the payload field at fault (``workers[3].pid``), or ``""``.
    """

    def __init__(self, kind: str, msg: str, field: str = "") -> None:
        super().__init__(f"{kind}: {msg}")
        self.kind = kind
        self.field = field


class Frame(namedtuple("Frame", "type payload offset size", defaults=(0, 0))):
    """One decoded frame (an immutable named tuple).

    :param type: the frame type (:class:`FrameType`).
    :param payload: the decoded msgpack map (checked against :data:`SCHEMAS`).
    :param offset: stream offset of the frame's first byte (0 for :func:`decode_frame`).
    :param size: encoded size, header plus payload.
    """

    __slots__ = ()


class DecoderStats:
    """Counters of a :class:`FrameDecoder`.

    Every byte fed ends up in exactly one of: a delivered frame, ``garbage_bytes`` (skipped
    while resynchronising, including rejected frames), or ``truncated_bytes`` (left over at
    :meth:`FrameDecoder.finish`). Rejected frames are counted by reason: a header or crc
    fault, an unknown type, a payload that is not a msgpack map (``bad_payload``) or one
    that fails its schema (one counter per :data:`guest.schema.KINDS`).
    """

    FIELDS = (
        "frames",
        "bad_crc",
        "oversize",
        "unknown_type",
        "bad_payload",
        "bad_version",
        *KINDS,
        "garbage_bytes",
        "truncated_bytes",
    )
    __slots__ = FIELDS

    def __init__(self) -> None:
        self.frames = 0
        self.bad_crc = 0
        self.oversize = 0
        self.unknown_type = 0
        self.bad_payload = 0
        self.bad_version = 0
        self.bad_field = 0  # the payload checks' KINDS, one counter each
        self.ext_type = 0
        self.bad_key = 0
        self.too_deep = 0
        self.too_large = 0
        self.non_finite = 0
        self.garbage_bytes = 0
        self.truncated_bytes = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict (for msgpack/logging)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self) -> str:
        return "DecoderStats(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"


def check_payload(ftype: FrameType, payload: Any) -> None:
    """Check a payload against its type's schema.

    :raises WireError: ``bad_payload`` if it is not a map, else the schema's kind, with the
        field at fault.
    """
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise WireError("bad_payload", f"{ftype.name} payload is {kind}, not a map")
    check = _compiled.get(ftype)
    if check is None:
        check = _compiled[ftype] = spec(SCHEMAS[ftype])
    try:
        check.check(payload, 0)
    except SchemaError as e:
        where = f"{ftype.name}.{e.field}" if e.path else ftype.name
        raise WireError(e.kind, f"{where}: {e.why}", e.field) from None


def encode_frame(ftype: FrameType | int, payload: dict[str, Any]) -> bytes:
    """Encode one frame.

    :param ftype: frame type.
    :param payload: map satisfying the type's :data:`SCHEMAS` entry.
    :return: header + msgpack payload.
    :raises WireError: unknown type, a payload its schema rejects, an unencodable value, or
        a payload larger than :data:`MAX_FRAME`.
    """
    try:
        ftype = FrameType(ftype)
    except ValueError:
        raise WireError("unknown_type", f"type {ftype!r}") from None
    check_payload(ftype, payload)
    try:
        body = msgpack.packb(payload, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise WireError("bad_payload", f"cannot encode {ftype.name}: {e}") from None
    if len(body) > MAX_FRAME:
        raise WireError("oversize", f"{ftype.name} payload {len(body)} > {MAX_FRAME}")
    prefix = _PREFIX.pack(MAGIC, VERSION, ftype, len(body))
    crc = binascii.crc32(body, binascii.crc32(prefix))
    return prefix + struct.pack("<I", crc) + body


_TYPES = {int(t): t for t in FrameType}  # a dict lookup is cheaper than FrameType(raw) per frame


class _Limits:
    """msgpack hooks that stop a payload early: a non-string key before the map is built
    (int keys hash to themselves, so a hostile map could collide them all), an extension
    type, or more lists and maps than :data:`guest.schema.MAX_CONTAINERS`."""

    __slots__ = ("containers",)

    def __init__(self) -> None:
        self.containers = 0

    def pairs(self, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
        self.containers += 1
        if self.containers > MAX_CONTAINERS:
            raise SchemaError("too_large", f"more than {MAX_CONTAINERS} lists and maps")
        for k, _ in pairs:
            if type(k) is not str:
                why = f"map key {repr(k)[:40]} is {type(k).__name__}, not str"
                raise SchemaError("bad_key", why)
        return dict(pairs)

    def items(self, items: list[Any]) -> list[Any]:
        self.containers += 1
        if self.containers > MAX_CONTAINERS:
            raise SchemaError("too_large", f"more than {MAX_CONTAINERS} lists and maps")
        return items


def _ext(code: int, _data: bytes) -> Any:
    raise SchemaError("ext_type", f"msgpack extension type {code} has no JSON form")


def _unpack_error(ftype: FrameType, e: Exception) -> WireError:
    text = str(e)
    if isinstance(e, SchemaError):
        return WireError(e.kind, f"{ftype.name}: {e.why}")
    if isinstance(e, (msgpack.StackError, RecursionError)):
        return WireError("too_deep", f"{ftype.name}: nested beyond msgpack's stack")
    if "exceeds max_" in text:  # msgpack's max_array_len / max_map_len guard
        return WireError("too_large", f"{ftype.name}: {text}")
    return WireError("bad_payload", f"{ftype.name}: {type(e).__name__}: {text}")


def _decode_payload(
    ftype_raw: int,
    body: bytes | bytearray | memoryview,
    offset: int = 0,
    accept: frozenset[FrameType] | None = None,
) -> Frame:
    """Type and payload checks of a frame whose framing and crc are already valid."""
    ftype = _TYPES.get(ftype_raw)
    if ftype is None or (accept is not None and ftype not in accept):
        raise WireError("unknown_type", f"type byte {ftype_raw}")
    lim = _Limits()
    try:
        payload = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=False,
            object_pairs_hook=lim.pairs,
            list_hook=lim.items,
            ext_hook=_ext,
            max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS,
        )
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as e:
        # The guest is untrusted: any malformed msgpack is a rejected frame, not a crash.
        raise _unpack_error(ftype, e) from None
    check_payload(ftype, payload)
    return Frame(ftype, payload, offset, HEADER_SIZE + len(body))


def decode_frame(data: bytes, accept: frozenset[FrameType] | None = None) -> Frame:
    """Strictly decode exactly one frame.

    :param data: the frame's bytes, nothing before or after.
    :param accept: the frame types allowed (default: all); others are ``unknown_type``.
    :raises WireError: on any violation; ``kind`` says which.
    """
    if len(data) < HEADER_SIZE:
        raise WireError("truncated", f"{len(data)} bytes < header {HEADER_SIZE}")
    magic, ver, ftype_raw, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError("bad_magic", f"magic {magic!r}")
    if ver != VERSION:
        raise WireError("bad_version", f"version {ver}")
    if length > MAX_FRAME:
        raise WireError("oversize", f"length {length} > {MAX_FRAME}")
    end = HEADER_SIZE + length
    if len(data) < end:
        raise WireError("truncated", f"{len(data)} bytes < frame {end}")
    if len(data) > end:
        raise WireError("trailing", f"{len(data) - end} bytes after the frame")
    body = data[HEADER_SIZE:end]
    if binascii.crc32(body, binascii.crc32(data[:8])) != crc:
        raise WireError("bad_crc", "crc mismatch")
    return _decode_payload(ftype_raw, body, 0, accept)


class FrameDecoder:
    """Incremental, resynchronising decoder of a frame stream.

    Never raises on input. Bad frames are counted in :attr:`stats` and skipped: after a
    bad header or crc the decoder advances one byte and scans for the magic again, so a
    corrupt length cannot swallow the frames after it; a frame with a valid crc but an
    unknown type or malformed payload is skipped whole.

    A garbage header announcing a long payload delays the frames behind it until that many
    bytes arrived (then its crc fails and they are found) or until :meth:`finish`.

    :param start_offset: stream offset of the first byte fed (to resume from a checkpoint
        of :attr:`consumed` and :attr:`pending`).
    :param max_frame: payload size cap; lower it only in tests.
    :param accept: the frame types of this direction (:data:`GUEST_TO_HOST` or
        :data:`HOST_TO_GUEST`; default: all); others count as ``unknown_type``.
    :param on_reject: called as ``on_reject(offset, type_byte, error)`` for each frame whose
        crc was valid but whose type or payload was rejected (``error`` is the
        :class:`WireError`, with ``kind`` and ``field``), so the host can say why.
    """

    def __init__(
        self,
        start_offset: int = 0,
        max_frame: int = MAX_FRAME,
        accept: frozenset[FrameType] | None = None,
        on_reject: Any = None,
    ) -> None:
        self._accept = accept
        self._buf = bytearray()
        self._base = start_offset  # stream offset of _buf[0]
        self._max = max_frame
        self._eof = False
        self._on_reject = on_reject
        self.stats = DecoderStats()

    @property
    def pending(self) -> bytes:
        """Bytes buffered but not yet decodable; at most ``HEADER_SIZE + max_frame``."""
        return bytes(self._buf)

    @property
    def consumed(self) -> int:
        """Stream offset of the first pending byte (bytes fully accounted for)."""
        return self._base

    def feed(self, data: bytes) -> list[Frame]:
        """Add stream bytes; return the frames completed by them, in stream order."""
        self._buf += data
        return self._scan()

    def finish(self) -> list[Frame]:
        """Declare end of stream.

        Rescans what is pending as if no more bytes will come (so frames hidden behind a
        garbage header are recovered), counts the rest in ``stats.truncated_bytes`` and
        leaves the decoder empty and reusable.

        :return: frames recovered from the pending bytes (usually none).
        """
        self._eof = True
        try:
            return self._scan()
        finally:
            self._eof = False

    def _skip(self, pos: int, n: int) -> int:
        if self._eof:
            self.stats.truncated_bytes += n
        else:
            self.stats.garbage_bytes += n
        return pos + n

    def _scan(self) -> list[Frame]:
        buf, out, pos = self._buf, [], 0
        while True:
            start = buf.find(MAGIC, pos)
            if start < 0:
                # Keep a trailing b"S": it may be the first half of the next magic.
                tail = len(buf) > pos and buf[-1] == MAGIC[0]
                keep = 1 if tail and not self._eof else 0
                pos = self._skip(pos, len(buf) - pos - keep)
                break
            if start > pos:
                pos = self._skip(pos, start - pos)
            step = self._try_frame(buf, pos)
            if step is None:  # incomplete: wait for more bytes
                break
            if isinstance(step, Frame):
                out.append(step)
                self.stats.frames += 1
                pos += step.size
            else:
                pos = self._skip(pos, step)
        del buf[:pos]
        self._base += pos
        return out

    def _try_frame(self, buf: bytearray, pos: int) -> Frame | int | None:
        """Decode at ``pos`` (which holds the magic): a Frame, bytes to skip, or None."""
        avail = len(buf) - pos
        if avail < HEADER_SIZE:
            return avail if self._eof else None
        _, ver, ftype_raw, length, crc = HEADER.unpack_from(buf, pos)
        if ver != VERSION:
            self.stats.bad_version += 1
            return 1
        if length > self._max:
            self.stats.oversize += 1
            return 1
        end = pos + HEADER_SIZE + length
        if len(buf) < end:
            return 1 if self._eof else None
        body = bytes(buf[pos + HEADER_SIZE : end])
        if binascii.crc32(body, binascii.crc32(buf[pos : pos + 8])) != crc:
            self.stats.bad_crc += 1
            return 1
        try:
            return _decode_payload(ftype_raw, body, self._base + pos, self._accept)
        except WireError as e:
            setattr(self.stats, e.kind, getattr(self.stats, e.kind) + 1)
            if self._on_reject is not None:
                self._on_reject(self._base + pos, ftype_raw, e)
            return HEADER_SIZE + length
