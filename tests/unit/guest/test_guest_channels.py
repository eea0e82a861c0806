"""COM2, bulk frame channel and stdio capture."""

import os
import subprocess
import sys
import textwrap

from guest import wire
from guest.channels import BulkChannel, Com2
from guest.wire import FrameDecoder, FrameType


def decode(data):
    d = FrameDecoder()
    return d.feed(data) + d.finish()


def test_com2_panic_lines_and_missing_device(tmp_path):
    p = tmp_path / "ttyS1"
    p.write_bytes(b"")
    c = Com2(str(p))
    c.panic("Traceback:\n  line 1\nValueError: x")
    c.line("hello")
    assert p.read_text() == (
        "PANIC: Traceback:\nPANIC:   line 1\nPANIC: ValueError: x\nschedlab-init: hello\n"
    )
    gone = Com2(str(tmp_path / "absent"))
    gone.panic("nothing happens")  # no device: silently dropped
    assert gone.fd == -1


def test_com2_full_nonblocking_device_drops_instead_of_blocking():
    r, w = os.pipe()
    os.set_blocking(w, False)
    c = Com2("/dev/null")
    os.close(c.fd)
    c.fd = w
    c._RETRIES = 3
    c.write("x" * (1 << 20))  # far more than a pipe holds; nobody reads
    assert c.dropped > 0
    os.close(r)
    os.close(w)


def test_bulk_channel_chunks_stdio_and_marks_broken(tmp_path):
    r, w = os.pipe()
    com2_path = tmp_path / "com2"
    com2_path.write_bytes(b"")
    ch = BulkChannel(w, Com2(str(com2_path)))
    blob = bytes(range(256)) * 1024  # 256 KiB -> 4 chunks
    import threading

    got = bytearray()

    def drain():
        while chunk := os.read(r, 1 << 16):
            got.extend(chunk)

    t = threading.Thread(target=drain)
    t.start()
    assert ch.stdio(FrameType.STDOUT, blob)
    assert not ch.send(FrameType.EXIT, {"code": "bad"})  # encode error: dropped, noted
    ch.close()
    t.join(5)
    frames = decode(bytes(got))
    assert [len(f.payload["data"]) for f in frames] == [wire.STDIO_CHUNK] * 4
    assert b"".join(f.payload["data"] for f in frames) == blob
    assert ch.dropped == 1 and "EXIT not sent" in com2_path.read_text()
    os.close(r)
    assert not ch.send(FrameType.EXIT, {"code": 0})  # closed


def test_bulk_channel_write_error_breaks_channel(tmp_path):
    r, w = os.pipe()
    os.close(r)  # EPIPE on write (SIGPIPE is ignored by Python)
    com2_path = tmp_path / "com2"
    com2_path.write_bytes(b"")
    ch = BulkChannel(w, Com2(str(com2_path)))
    assert not ch.log("info", "a")
    assert not ch.log("info", "b")
    assert ch.broken and ch.dropped == 2
    assert com2_path.read_text().count("bulk port write failed") == 1
    ch.close()


def test_stdio_capture_forwards_process_and_child_output(tmp_path):
    # In a child process: StdioCapture rewires fds 1 and 2.
    out = tmp_path / "bulk"
    code = textwrap.dedent(f"""
        import os, subprocess, sys
        from guest.channels import BulkChannel, Com2, StdioCapture
        fd = os.open({str(out)!r}, os.O_WRONLY | os.O_CREAT, 0o600)
        cap = StdioCapture(BulkChannel(fd, Com2("/dev/null")))
        cap.start()
        print("from init")
        print("to stderr", file=sys.stderr)
        subprocess.run(["sh", "-c", "echo from child"], check=True)
        cap.stop()
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    frames = decode(out.read_bytes())
    stdout = b"".join(f.payload["data"] for f in frames if f.type is FrameType.STDOUT)
    stderr = b"".join(f.payload["data"] for f in frames if f.type is FrameType.STDERR)
    assert stdout == b"from init\nfrom child\n"
    assert stderr == b"to stderr\n"
