"""The receiver of the run's inputs: the host -> guest half of the bulk port.

Right after SYS_RDY, the init process calls :func:`receive` on the bulk port's descriptor (opened for
reading and writing). It reads the frames of :mod:`guest.transfer` with a deadline, mixes
the run document's fresh entropy into the kernel CRNG and reseeds Python's ``random``
before anything else, writes each file to ``/run/schedlab/inputs/<kind>/<name>`` (through a
``.part`` file, renamed once its size and sha256 match; permission bits from the
document), and returns what arrived. Whatever goes wrong raises :class:`InputError` with
one line, after removing every file of the transfer, so nothing half-written is left.
The caller then answers with an INPUTS_ACK frame (:func:`guest.transfer.ack_ok` / ``ack_error``).
"""

from __future__ import annotations

import hashlib
import os
import select
import time
from collections import namedtuple

from guest import rundoc, wire
from guest.transfer import InputsParser, TransferError

TYPE_CHECKING = False  # typing costs ~0.4 s of guest startup under TCG
if TYPE_CHECKING:
    import threading
    from typing import Any

__all__ = ("InputError", "Received", "mix_entropy", "receive")

# <linux/random.h>: _IOW('R', 0x03, int[2]) and _IO('R', 0x07).
RNDADDENTROPY = 0x40085203
RNDRESEEDCRNG = 0x5207
_READ = 1 << 16  # a virtio-console read returns at most one of the driver's 4 KiB buffers
_POLL_S = 0.2  # how often a wait checks the stop flag
_HANGUP_S = 0.05  # host end disconnected: POLLHUP stays latched, so sleep instead of spinning
_SPARE = 4 << 20  # /run must keep this much free after the files are written

#: What arrived: the validated document, each file with the sha256 computed over what was
#: written, file bytes, nanoseconds from the first byte to the last frame, how the entropy
#: went in (``ioctl``, ``write``, or ``failed: ...``), and ``stats``: reads of the port and
#: nanoseconds spent waiting in them (the rest of recv_ns is decoding, hashing, writing).
Received = namedtuple("Received", "doc installed bytes recv_ns entropy stats")


class InputError(Exception):
    """The inputs did not arrive whole; one line for the user."""


def mix_entropy(root: str, data: bytes) -> str:
    """Credit ``data`` to the kernel's input pool and force a CRNG reseed, then reseed
    Python's ``random``, so clones of one snapshot draw different numbers.

    Falls back to a plain write (mixed in, not credited) where the ioctls are refused.

    :return: ``ioctl``, ``write`` or ``failed: <why>``.
    """
    import random  # the cost is paid once, and a later import would seed from the same pool

    random.seed(data)
    try:
        fd = os.open(os.path.join(root, "dev/urandom"), os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        return f"failed: open /dev/urandom: {e.strerror}"
    try:
        try:
            import fcntl
            import struct

            fcntl.ioctl(fd, RNDADDENTROPY, struct.pack("ii", 8 * len(data), len(data)) + data)
            fcntl.ioctl(fd, RNDRESEEDCRNG)
            return "ioctl"
        except OSError:
            os.write(fd, data)
            return "write"
    except OSError as e:
        return f"failed: {e.strerror or e}"
    finally:
        os.close(fd)


class _Files:
    """The files of one transfer on disk; :meth:`discard` removes all of them."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.base = os.path.realpath(os.path.join(root, rundoc.INPUTS_DIR.lstrip("/")))
        self.installed: list[tuple[rundoc.FileEntry, str]] = []
        self._fd = -1
        self._part = ""
        self._hash: Any = None

    def prepare(self, doc: rundoc.RunDoc) -> None:
        need = sum(f.size for f in doc.files)
        for kind in sorted({f.kind for f in doc.files}):
            os.makedirs(os.path.join(self.base, kind), mode=0o755, exist_ok=True)
        if need:
            st = os.statvfs(self.base)
            free = st.f_bavail * st.f_frsize
            if need + _SPARE > free:
                raise InputError(
                    f"the inputs need {need} bytes but {rundoc.INPUTS_DIR} has {free} free"
                )

    def _target(self, entry: rundoc.FileEntry) -> str:
        target = os.path.join(self.base, entry.kind, entry.name)
        # Names are checked to hold no '/', and kinds come from a fixed list; this guards
        # against a directory that is a symlink planted in the image.
        if os.path.realpath(os.path.dirname(target)) != os.path.join(self.base, entry.kind):
            raise InputError(f"{entry.kind} directory is not under {rundoc.INPUTS_DIR}")
        return target

    def begin(self, entry: rundoc.FileEntry) -> None:
        self._part = self._target(entry) + ".part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(self._part, flags, 0o600)
        self._hash = hashlib.sha256()

    def chunk(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._hash.update(data)

    def end(self, entry: rundoc.FileEntry) -> None:
        os.close(self._fd)
        self._fd = -1
        digest = self._hash.hexdigest()
        if digest != entry.sha256:
            raise InputError(
                f"file {entry.name!r}: sha256 {digest[:16]}... differs from the announced "
                f"{entry.sha256[:16]}... (corrupted in transfer)"
            )
        os.chmod(self._part, entry.mode)
        target = self._target(entry)
        os.replace(self._part, target)
        self._part = ""
        self.installed.append((entry, digest))

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        paths = [self._part] if self._part else []
        paths += [os.path.join(self.base, e.kind, e.name) for e, _ in self.installed]
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        self.installed.clear()


class _Reader:
    """Bytes from the port with a deadline: the first byte within ``first_s``, then no
    silence longer than ``idle_s``; ``stop`` set ends the wait."""

    def __init__(self, fd: int, first_s: float, idle_s: float, stop: threading.Event | None):
        self.fd = fd
        self.first_s = first_s
        self.idle_s = idle_s
        self.stop = stop
        self.deadline = time.monotonic() + first_s
        self.started = False
        self.t0 = 0
        self.reads = 0
        self.wait_ns = 0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def read(self) -> bytes:
        t = time.monotonic_ns()
        data = self._read()
        self.reads += 1
        self.wait_ns += time.monotonic_ns() - t
        return data

    def _read(self) -> bytes:
        while True:
            if self.stop is not None and self.stop.is_set():
                raise InputError("the host asked for shutdown while the inputs were arriving")
            left = self.deadline - time.monotonic()
            if left <= 0:
                if self.started:
                    raise InputError(f"the inputs stopped arriving: no byte for {self.idle_s:g} s")
                raise InputError(f"no inputs from the host within {self.first_s:g} s of SYS_RDY")
            events = self._poll.poll(int(min(left, _POLL_S) * 1000) + 1)
            if not events:
                continue
            revents = events[0][1]
            if revents & select.POLLNVAL:
                raise InputError("the bulk port is not open for reading")
            data = b""
            if revents & select.POLLIN:
                try:
                    data = os.read(self.fd, _READ)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise InputError(f"reading the bulk port: {e.strerror or e}") from None
            if not data:
                time.sleep(_HANGUP_S)  # host end not connected (yet): keep waiting
                continue
            if not self.started:
                self.started, self.t0 = True, time.monotonic_ns()
            self.deadline = time.monotonic() + self.idle_s
            return data


def receive(
    fd: int,
    root: str = "/",
    first_timeout_s: float = 120.0,
    idle_timeout_s: float = 30.0,
    stop: threading.Event | None = None,
) -> Received:
    """Read one transfer from ``fd`` and install its files under ``root``.

    :param fd: the bulk port, readable (blocking or not).
    :param first_timeout_s: how long to wait for the first byte.
    :param idle_timeout_s: the longest silence once bytes flow.
    :param stop: set by the control thread on a host shutdown request.
    :raises InputError: a timeout, a corrupt frame, a broken contract, a bad sha256, no room.
    """
    reader = _Reader(fd, first_timeout_s, idle_timeout_s, stop)
    decoder = wire.FrameDecoder(accept=wire.HOST_TO_GUEST)
    parser = InputsParser()
    files = _Files(root)
    entropy = ""
    try:
        while not parser.done:
            batch = decoder.feed(reader.read())
            _check_clean(decoder)  # before acting on frames that followed a corrupt one
            for frame in batch:
                event = parser.feed(frame)
                kind = event[0]
                if kind == "run":
                    entropy = mix_entropy(root, event[1].entropy)  # before anything else
                    files.prepare(event[1])
                elif kind == "begin":
                    files.begin(event[2])
                elif kind == "chunk":
                    files.chunk(event[2])
                else:
                    doc = parser.doc  # set by the RUN frame, which end events follow
                    assert doc is not None
                    files.end(doc.files[event[1]])
        if decoder.pending:
            raise InputError(f"{len(decoder.pending)} bytes after the last input frame")
    except TransferError as e:
        files.discard()
        raise InputError(str(e)) from None
    except OSError as e:
        files.discard()
        raise InputError(f"writing the inputs: {e.strerror or e} ({e.filename or ''})") from None
    except BaseException:
        files.discard()
        raise
    assert parser.doc is not None
    recv_ns = time.monotonic_ns() - reader.t0
    stats = {"reads": reader.reads, "wait_ns": reader.wait_ns}
    return Received(parser.doc, list(files.installed), parser.bytes, recv_ns, entropy, stats)


def _check_clean(decoder: wire.FrameDecoder) -> None:
    """The host's frames are never corrupt: any skipped byte means a broken transfer."""
    s = decoder.stats
    if (
        s.garbage_bytes
        or s.bad_crc
        or s.oversize
        or s.unknown_type
        or s.bad_payload
        or s.bad_version
    ):
        bad = {k: v for k, v in s.as_dict().items() if v and k not in ("frames",)}
        raise InputError(f"corrupt input frames on the bulk port: {bad}")
