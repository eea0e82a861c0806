"""The host end of ``schedlab shell``: the user's terminal <-> the guest's shell port.

Guest bytes come from the VMM's retained ``shell`` stream (``vmm.replay``, woken by its
stream events), so none is lost or reordered however late the relay subscribes; they are
:mod:`guest.wire` frames, decoded by a bounded :class:`~guest.wire.FrameDecoder` that
accepts only :data:`~guest.wire.SHELL_TO_HOST` (the guest is untrusted). Host bytes go out
as SHELL_* frames through ``vmm.shell_write``, resent until the VMM took them.

Interactive, the terminal is raw (:class:`~orchestrator.terminal.RawTerminal`): every key
goes to the guest's pty, Ctrl-C included, and :data:`ESCAPE` (Ctrl-A X) leaves. Under
``--exec`` the terminal stays as it is and a Ctrl-C (SIGINT to us) becomes a SHELL_SIGNAL
(:meth:`ShellRelay.interrupt`, from :mod:`orchestrator.shell_cli`).
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable

import zmq

from guest import wire
from guest.wire import FrameType
from schedlab_shared.bus import topics
from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.client import BusClient, subscriber
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.bus.vmm import Stream

__all__ = ("ESCAPE_HELP", "EscapeFilter", "ShellRelay")

ESCAPE_HELP = "Ctrl-A X leaves, Ctrl-A Ctrl-A sends Ctrl-A"
_CTRL_A = 0x01
_REPLAY_BYTES = 4 << 20
_POLL_EVERY_S = 0.1  # replay without an event too: events sent before we subscribed are lost
_MAX_OUT = 1 << 20  # host bytes queued for the guest before stdin is read no more


class EscapeFilter:
    """Ctrl-A X in the key stream: :meth:`feed` returns the bytes for the guest and whether
    the user asked to leave. Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A and any other key sends
    both. The state carries across reads (the two keys may come apart)."""

    def __init__(self) -> None:
        self._armed = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for b in data:
            if self._armed:
                self._armed = False
                if b in (ord("x"), ord("X")):
                    return bytes(out), True
                if b != _CTRL_A:
                    out.append(_CTRL_A)
                out.append(b)
            elif b == _CTRL_A:
                self._armed = True
            else:
                out.append(b)
        return bytes(out), False


class ShellRelay:
    """Relays one session; driven by :meth:`pump` from the run's follow loop.

    :param vmm: the VMM's control client (replays, shell writes).
    :param ctx: the ZeroMQ context (the stream events' subscriber).
    :param pub: the VMM's event endpoint.
    :param run_id: the VM's id (topics).
    :param interactive: keys and the window size go to a pty; the escape works.
    :param stdin: fd read for the guest (-1: none); stdout, stderr: fds written.
    :param dmesg: the kernel console (COM1) to ``stderr`` as it comes.
    :param on_ready: called once the guest's command runs (e.g. to make the terminal raw).
    """

    def __init__(
        self,
        vmm: BusClient,
        ctx: zmq.Context,
        pub: str,
        run_id: str,
        *,
        interactive: bool,
        stdin: int = 0,
        stdout: int = 1,
        stderr: int = 2,
        dmesg: bool = False,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.vmm = vmm
        self.interactive = interactive
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.on_ready = on_ready
        self.decoder = wire.FrameDecoder(max_frame=wire.SHELL_CHUNK + 64, accept=wire.SHELL_TO_HOST)
        self.escape = EscapeFilter()
        streams = [Stream.SHELL.value] + ([Stream.CONSOLE.value] if dmesg else [])
        self._sub = subscriber(ctx, pub, *(topics.stream(run_id, s) for s in streams))
        self._next = dict.fromkeys(streams, 0)
        self._since_poll = _POLL_EVERY_S
        self._out = bytearray()  # encoded frames for the guest, not yet taken by the VMM
        self._stdin_open = stdin >= 0
        self.ready = False
        self.exit: tuple[int, int] | None = None  # (code, signal) from SHELL_EXIT
        self.left = False  # the user typed the escape
        self.error = ""
        self.bytes_out = 0  # SHELL_OUT + SHELL_ERR payload bytes written
        self.crlf = False  # raw terminal: the console's "\n" needs a "\r"

    # -- the loop ----------------------------------------------------------------------

    def pump(self, budget_s: float) -> None:
        """Wait up to ``budget_s`` for keys or guest bytes; handle what came."""
        poller = zmq.Poller()
        poller.register(self._sub, zmq.POLLIN)
        reading = self.ready and self._stdin_open and len(self._out) < _MAX_OUT
        if reading:
            poller.register(self.stdin, zmq.POLLIN)
        events = dict(poller.poll(max(0, int(budget_s * 1000))))
        woke = False
        while self._sub.poll(0):
            self._sub.recv_multipart()  # only a wake-up: the data comes from the replay
            woke = True
        self._since_poll += budget_s
        if woke or self._since_poll >= _POLL_EVERY_S:
            self._since_poll = 0.0
            for stream in self._next:
                self._replay(stream)
        if reading and events.get(self.stdin):
            self._read_stdin()
        self._flush()

    def _replay(self, stream: str) -> None:
        while True:
            try:
                got = self.vmm.request(
                    vmm_proto.Replay(stream, self._next[stream], _REPLAY_BYTES), timeout_s=2.0
                )
            except BusError as exc:
                if exc.status is Status.GONE:
                    self.error = f"the VMM no longer holds the {stream} stream: {exc}"
                return  # not started yet, or busy: asked again next turn
            for seq, data in got.chunks:
                if seq >= self._next[stream]:
                    self._next[stream] = seq + 1
                    self._guest_bytes(stream, data)
            if not got.chunks or self._next[stream] >= got.next_seq:
                return

    def _guest_bytes(self, stream: str, data: bytes) -> None:
        if stream == Stream.CONSOLE:
            _write_all(self.stderr, data.replace(b"\n", b"\r\n") if self.crlf else data)
            return
        for frame in self.decoder.feed(data):
            p = frame.payload
            if frame.type is FrameType.SHELL_OUT:
                self.bytes_out += len(p["data"])
                _write_all(self.stdout, p["data"])
            elif frame.type is FrameType.SHELL_ERR:
                self.bytes_out += len(p["data"])
                _write_all(self.stderr, p["data"])
            elif frame.type is FrameType.SHELL_READY and not self.ready:
                self.ready = True
                if self.on_ready is not None:
                    self.on_ready()
            elif frame.type is FrameType.SHELL_EXIT:
                self.exit = (p["code"], p["signal"])
                self._stdin_open = False

    def _read_stdin(self) -> None:
        try:
            data = os.read(self.stdin, wire.SHELL_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stdin_open = False
            self.send(FrameType.SHELL_EOF, {})
            return
        if self.interactive:
            data, leave = self.escape.feed(data)
            if leave:
                self.left = True
                self._stdin_open = False
        if data:
            self.send(FrameType.SHELL_IN, {"data": data})

    # -- to the guest ------------------------------------------------------------------

    def send(self, ftype: FrameType, payload: dict) -> None:
        """Queue one frame for the guest (sent by :meth:`pump`)."""
        self._out += wire.encode_frame(ftype, payload)

    def interrupt(self, sig: int) -> bool:
        """Signal ``sig`` for the guest command's process group (``--exec``'s Ctrl-C);
        False when there is no running command to take it."""
        if not self.ready or self.exit is not None:
            return False
        self.send(FrameType.SHELL_SIGNAL, {"signal": int(sig)})
        return True

    def winch(self, rows: int, cols: int) -> None:
        """The host terminal's new size, for the guest's pty."""
        if self.ready and rows > 0 and cols > 0:
            self.send(FrameType.SHELL_WINCH, {"rows": min(rows, 4096), "cols": min(cols, 4096)})

    def _flush(self) -> None:
        while self._out:
            chunk = bytes(self._out[: vmm_proto.MAX_BULK_WRITE])
            try:
                got = self.vmm.request(vmm_proto.ShellWrite(chunk, 0.05), timeout_s=2.0)
            except BusError:
                return  # the VM is gone or busy: the session notices either way
            del self._out[: max(0, min(got.accepted, len(chunk)))]
            if got.accepted < len(chunk):
                return  # the guest is not reading yet: the rest waits for the next turn

    @property
    def done(self) -> bool:
        """The command exited (its status is in :attr:`exit`) or the user left."""
        return self.exit is not None or self.left

    def close(self) -> None:
        self._sub.close(0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
        except OSError:  # EPIPE (`| head`), EIO (the terminal closed): the rest is dropped
            return
