"""guest/receiver.py: PID 1's receiver of the run's inputs, against a socketpair as the bulk port."""

import hashlib
import io
import os
import random
import socket
import stat
import threading
import time

import pytest

from guest import receiver, rundoc, transfer, wire
from guest.receiver import InputError, receive
from guest.rundoc import FileEntry, Scheduler  # noqa: F401
from guest.spec import RunSpec

SPEC = RunSpec("cgroup-spinners", duration=0.5)
ENTROPY = bytes(range(32))


def entry(kind, name, data, mode=0o644):
    return FileEntry(kind, name, mode, len(data), hashlib.sha256(data).hexdigest())


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "dev").mkdir(parents=True)
    (r / "dev/urandom").write_bytes(b"")
    (r / "run").mkdir()
    return r


@pytest.fixture
def port():
    host, guest = socket.socketpair()
    for s in (host, guest):  # small buffers: the sender must wait for the guest to read
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    yield host, guest
    host.close()
    guest.close()


def send_async(sock, blob, pause_after=None):
    def run():
        try:
            if pause_after is None:
                sock.sendall(blob)
            else:
                sock.sendall(blob[:pause_after])  # then silence
        except OSError:
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def transfer_blob(files, scheduler=None):
    entries = [entry(k, n, d, m) for k, n, d, m in files]
    doc = rundoc.build(SPEC, files=entries, scheduler=scheduler, entropy=ENTROPY, run_id="t")
    return b"".join(transfer.frames(doc, lambda i: io.BytesIO(files[i][2])))


def installed_names(root):
    base = root / "run/schedlab/inputs"
    return (
        sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
        if base.exists()
        else []
    )


def test_files_installed_with_modes_and_digests(root, port):
    host, guest = port
    sched = os.urandom(300_000)
    files = [
        ("scheduler", "scx_simple", sched, 0o755),
        ("lib", "libelf.so.1", b"elf", 0o644),
        ("include", "notes.txt", b"", 0o600),
    ]
    blob = transfer_blob(files, Scheduler("/run/schedlab/inputs/scheduler/scx_simple", ("-v",)))
    t = send_async(host, blob)
    got = receive(guest.fileno(), str(root), first_timeout_s=5, idle_timeout_s=5)
    t.join(5)
    assert got.doc.spec == SPEC and got.doc.scheduler.args == ("-v",)
    assert got.bytes == len(sched) + 3 and got.recv_ns > 0
    assert [(e.name, d) for e, d in got.installed] == [
        (n, hashlib.sha256(data).hexdigest()) for _, n, data, _ in files
    ]
    base = root / "run/schedlab/inputs"
    assert (base / "scheduler/scx_simple").read_bytes() == sched
    assert stat.S_IMODE((base / "scheduler/scx_simple").stat().st_mode) == 0o755
    assert stat.S_IMODE((base / "include/notes.txt").stat().st_mode) == 0o600
    assert installed_names(root) == ["include/notes.txt", "lib/libelf.so.1", "scheduler/scx_simple"]
    ack = transfer.check_ack(
        transfer.ack_ok(got.installed, got.bytes, got.recv_ns, got.entropy), got.doc.files
    )
    assert ack.ok, ack.error


def test_entropy_mixed_first_and_random_reseeded(root, port):
    host, guest = port
    t = send_async(host, transfer_blob([]))
    got = receive(guest.fileno(), str(root), first_timeout_s=5)
    t.join(5)
    # A regular file refuses the ioctls (ENOTTY): the bytes are still written in.
    assert got.entropy == "write" and (root / "dev/urandom").read_bytes() == ENTROPY
    mine = random.Random(ENTROPY).random()
    assert random.random() == mine


def test_mix_entropy_without_urandom(tmp_path):
    assert receiver.mix_entropy(str(tmp_path), ENTROPY).startswith("failed: open /dev/urandom")


def test_large_file_streams_intact_with_bounded_buffers(root, port):
    host, guest = port
    data = os.urandom(5 << 20)
    t = send_async(host, transfer_blob([("payload", "blob", data, 0o644)]))
    got = receive(guest.fileno(), str(root), first_timeout_s=10, idle_timeout_s=10)
    t.join(10)
    out = root / "run/schedlab/inputs/payload/blob"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == got.installed[0][1]
    assert got.installed[0][1] == hashlib.sha256(data).hexdigest()


def hostile(root, port, blob, match, **kw):
    host, guest = port
    t = send_async(host, blob, kw.pop("pause_after", None))
    with pytest.raises(InputError, match=match):
        receive(guest.fileno(), str(root), **{"first_timeout_s": 3, "idle_timeout_s": 0.5, **kw})
    t.join(5)
    assert installed_names(root) == []  # nothing half-written is left


def test_bad_sha_removes_the_file(root, port):
    data = b"real content"
    e = entry("payload", "p", data)._replace(sha256=hashlib.sha256(b"other").hexdigest())
    doc = rundoc.build(SPEC, files=[e], entropy=ENTROPY)
    blob = b"".join(transfer.frames(doc, lambda i: io.BytesIO(data)))
    hostile(root, port, blob, "sha256 .* differs")


def test_bad_sha_of_a_later_file_removes_the_earlier_ones(root, port):
    good = entry("lib", "a", b"aaa")
    bad = entry("lib", "b", b"bbb")._replace(sha256="0" * 64)
    doc = rundoc.build(SPEC, files=[good, bad], entropy=ENTROPY)
    blob = b"".join(transfer.frames(doc, lambda i: io.BytesIO([b"aaa", b"bbb"][i])))
    hostile(root, port, blob, "file 'b'")


def test_traversal_name_rejected(root, port):
    doc = rundoc.build(SPEC, entropy=ENTROPY)
    doc["files"] = [
        {"kind": "lib", "name": "../../etc/passwd", "mode": 0o644, "size": 1, "sha256": "0" * 64}
    ]
    blob = wire.encode_frame(wire.FrameType.RUN, {"doc": doc})
    hostile(root, port, blob, r"files\[0\].name")
    assert not (root / "etc").exists()


def test_symlinked_kind_directory_rejected(root, port, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "run/schedlab/inputs").mkdir(parents=True)
    os.symlink(elsewhere, root / "run/schedlab/inputs/lib")
    hostile(root, port, transfer_blob([("lib", "x", b"1", 0o644)]), "not under")
    assert list(elsewhere.iterdir()) == []


def test_truncated_transfer_times_out(root, port):
    blob = transfer_blob([("payload", "p", os.urandom(200_000), 0o644)])
    hostile(root, port, blob, "stopped arriving", pause_after=len(blob) // 2)


def test_no_inputs_times_out(root, port):
    hostile(root, port, b"", "no inputs from the host within 0.3 s", first_timeout_s=0.3)


def test_garbage_is_a_corrupt_transfer(root, port):
    blob = transfer_blob([("payload", "p", b"x" * 100, 0o644)])
    broken = bytearray(blob)
    broken[len(blob) // 2] ^= 0xFF
    hostile(root, port, bytes(broken), "corrupt input frames")


def test_guest_frames_from_the_host_are_refused(root, port):
    blob = wire.encode_frame(wire.FrameType.LOG, {"level": "info", "msg": "hi"})
    hostile(root, port, blob, "unknown_type")


def test_bytes_after_the_last_input_rejected(root, port):
    hostile(root, port, transfer_blob([]) + wire.MAGIC, "after the last input frame")


def test_no_room_on_run(root, port, monkeypatch):
    real = os.statvfs

    class Tiny:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(receiver.os, "statvfs", lambda p: Tiny() if "inputs" in str(p) else real(p))
    hostile(root, port, transfer_blob([("payload", "p", b"x" * 1000, 0o644)]), "has 40960 free")


def test_stop_request_ends_the_wait(root, port):
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    hostile(root, port, b"", "shutdown", stop=stop, first_timeout_s=30)
    assert time.monotonic() - t0 < 5


def test_hung_up_host_is_waited_for_not_spun_on(root):
    r, w = os.pipe()  # a closed writer: read() returns b"" forever, like an unconnected port
    os.close(w)
    t0 = time.monotonic()
    with pytest.raises(InputError, match="no inputs"):
        receive(r, str(root), first_timeout_s=0.5)
    os.close(r)
    assert 0.5 <= time.monotonic() - t0 < 3


def test_receiver_import_stays_lean():
    import subprocess
    import sys

    code = (
        "import sys; import guest.receiver;"
        "print(sorted({'typing', 'pathlib', 'dataclasses', 'inspect', 're'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
