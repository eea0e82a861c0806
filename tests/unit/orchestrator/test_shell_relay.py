"""The host end of ``schedlab shell``: escape keys, hostile guest bytes, input flow control."""

from __future__ import annotations

import os
from types import SimpleNamespace

import zmq

from guest import wire
from guest.wire import FrameType
from orchestrator.shell_cli import exit_status
from orchestrator.shell_relay import EscapeFilter, ShellRelay
from schedlab_shared.bus import vmm as vmm_proto


def test_escape_leaves_and_ctrl_a_passes_through_across_reads():
    f = EscapeFilter()
    assert f.feed(b"ls\r") == (b"ls\r", False)
    assert f.feed(b"a\x01") == (b"a", False)  # armed: the next read decides
    assert f.feed(b"\x01") == (b"\x01", False)  # Ctrl-A Ctrl-A: one Ctrl-A
    assert f.feed(b"\x01b") == (b"\x01b", False)  # any other key: both
    assert f.feed(b"q\x01X rest") == (b"q", True)
    assert EscapeFilter().feed(b"\x03") == (b"\x03", False)  # Ctrl-C is the guest's


def test_exit_status_is_the_commands_or_128_plus_the_signal():
    assert [exit_status(0, 0), exit_status(3, 0), exit_status(-1, 9), exit_status(-1, 2)] == [
        0,
        3,
        137,
        130,
    ]
    assert exit_status(-1, 0) == 2  # no status at all: could not judge


class _Vmm:
    """A VMM that holds ``chunks`` of the shell stream and takes ``take`` bytes per write."""

    def __init__(self, chunks: list[bytes], take: int = 1 << 20) -> None:
        self.chunks, self.take, self.written = chunks, take, b""

    def request(self, msg, timeout_s=None):  # noqa: ANN001, ANN201
        if isinstance(msg, vmm_proto.Replay):
            got = [[i, d] for i, d in enumerate(self.chunks) if i >= msg.from_seq]
            return SimpleNamespace(chunks=got, next_seq=len(self.chunks), first_seq=0)
        if isinstance(msg, vmm_proto.ShellWrite):
            n = min(self.take, len(msg.data))
            self.written += msg.data[:n]
            return SimpleNamespace(accepted=n)
        raise AssertionError(msg)


def _relay(tmp_path, vmm, **kw) -> tuple[ShellRelay, int, int, zmq.Context]:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
    ctx = zmq.Context()
    relay = ShellRelay(
        vmm, ctx, f"ipc://{tmp_path}/pub", "run-1", interactive=False, stdin=-1,
        stdout=out_w, stderr=err_w, **kw,
    )  # fmt: skip
    return relay, out_r, err_r, ctx


def test_guest_frames_land_on_stdout_and_stderr_and_garbage_is_dropped(tmp_path):
    bad_type = wire.encode_frame(FrameType.SHELL_IN, {"data": b"host-only type"})
    huge = bytearray(wire.encode_frame(FrameType.SHELL_OUT, {"data": b"z"}))
    huge[4:8] = (50 << 20).to_bytes(4, "little")  # a length far over the relay's cap
    chunks = [
        wire.encode_frame(FrameType.SHELL_READY, {"pid": 5, "tty": False}),
        os.urandom(3000) + wire.encode_frame(FrameType.SHELL_OUT, {"data": b"out\n"}),
        bad_type + bytes(huge) + wire.encode_frame(FrameType.SHELL_ERR, {"data": b"err\n"}),
        wire.encode_frame(FrameType.SHELL_EXIT, {"code": 3, "signal": 0}),
    ]
    ready = []
    relay, out_r, err_r, ctx = _relay(tmp_path, _Vmm(chunks), on_ready=lambda: ready.append(1))
    try:
        relay.pump(0.0)
        assert ready == [1] and relay.exit == (3, 0) and relay.done
        assert os.read(out_r, 100) == b"out\n" and os.read(err_r, 100) == b"err\n"
        assert relay.decoder.stats.unknown_type == 1 and relay.decoder.stats.garbage_bytes > 0
        assert len(relay.decoder.pending) <= wire.HEADER_SIZE + wire.SHELL_CHUNK + 64
    finally:
        relay.close()
        ctx.term()


def test_host_frames_are_resent_until_the_vmm_took_them(tmp_path):
    vmm = _Vmm([], take=7)
    relay, _o, _e, ctx = _relay(tmp_path, vmm)
    try:
        relay.send(FrameType.SHELL_IN, {"data": b"echo hi\n"})
        want = wire.encode_frame(FrameType.SHELL_IN, {"data": b"echo hi\n"})
        for _ in range(20):
            relay.pump(0.0)
        assert vmm.written == want
        relay.ready = True
        relay.winch(50, 100000)  # clamped to what the guest accepts
        for _ in range(10):
            relay.pump(0.0)
        f = wire.decode_frame(vmm.written[len(want) :])
        assert f.type is FrameType.SHELL_WINCH and f.payload == {"rows": 50, "cols": 4096}
    finally:
        relay.close()
        ctx.term()


def test_include_files_pack_an_elfs_libraries_and_leave_a_script_alone(tmp_path):
    from pathlib import Path

    from orchestrator.shell_cli import include_files
    from tests.framework.prereq import require_tool

    xz = Path(require_tool("xz", "xz-utils: a dynamically linked binary"))
    script = tmp_path / "probe.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    files = include_files((xz, script))
    kinds = [(f.kind, f.name or f.path.name) for f in files]
    assert kinds[:2] == [("include", "xz"), ("include", "probe.sh")]
    libs = [n for k, n in kinds if k == "lib"]
    assert any(n.startswith("liblzma.so") for n in libs)
    assert not any(n.startswith("ld-linux") for n in libs)  # the image's own loader
