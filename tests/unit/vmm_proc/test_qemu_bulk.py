"""The QEMU engine's host-to-guest bulk writes: the chardev socket's buffer is the bound."""

import socket
import threading
import time

import pytest

from schedlab_shared.vm_config import VmConfig
from vmm_proc.engines.base import EngineError
from vmm_proc.engines.qemu import QemuEngine


@pytest.fixture
def engine():
    eng = QemuEngine(
        VmConfig(run_id="b1", engine="qemu", kernel="/k", initrd="/i", cmdline=""), hooks=None
    )
    ours, qemu_side = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    eng._conns["bulk"] = ours
    yield eng, qemu_side
    ours.close()
    qemu_side.close()


def test_takes_what_fits_then_gives_up_at_the_timeout(engine):
    eng, qemu_side = engine
    t0 = time.monotonic()
    n = eng.send_bulk(b"x" * (4 << 20), 0.1)  # QEMU (the guest) reads nothing
    assert 0 < n < 4 << 20 and 0.1 <= time.monotonic() - t0 < 2
    assert eng.bulk_pending() > 0  # SIOCOUTQ: queued bytes plus the kernel's overhead
    assert eng.send_bulk(b"y", 0.0) == 0


def test_a_reading_guest_gets_every_byte_in_order(engine):
    eng, qemu_side = engine
    data = bytes(range(256)) * 8192  # 2 MiB
    got = bytearray()

    def guest():
        while len(got) < len(data):
            got.extend(qemu_side.recv(65536))

    t = threading.Thread(target=guest, daemon=True)
    t.start()
    sent = 0
    while sent < len(data):
        sent += eng.send_bulk(data[sent : sent + (1 << 20)], 0.5)
    t.join(10)
    assert bytes(got) == data


def test_a_closed_port_is_an_engine_error(engine):
    eng, qemu_side = engine
    qemu_side.close()
    with pytest.raises(EngineError, match="bulk port write failed"):
        for _ in range(100):
            eng.send_bulk(b"z" * 65536, 0.1)
    eng._conns.clear()
    with pytest.raises(EngineError, match="not connected"):
        eng.send_bulk(b"z", 0.1)
