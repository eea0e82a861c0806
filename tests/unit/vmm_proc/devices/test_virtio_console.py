"""virtio-console multiport: Linux's control handshake, data both ways, bounds, hostile driver."""

import os
import struct
import threading
import time

import pytest

from tests.framework.fake_memory import FakeGuestMemory
from tests.framework.virtq_driver import MmioDriver, MockVirtqDriver
from vmm_proc.devices.virtio import console as c
from vmm_proc.devices.virtio import mmio as m
from vmm_proc.devices.virtio.console import ConsoleConfig, VirtioConsole
from vmm_proc.devices.virtio.mmio import VirtioMmio
from vmm_proc.devices.virtio.queue import VIRTQ_DESC_F_WRITE

CTRL = struct.Struct("<IHH")
NAME = "org.schedlab.bulk"


class Counts:
    def __init__(self):
        self.lost = 0
        self.bad = 0

    def tx(self, port, n):
        pass

    def tx_lost(self, port, n):
        self.lost += n

    def rx(self, port, n):
        pass

    def bad_control(self):
        self.bad += 1


class Guest:
    """Plays drivers/char/virtio_console.c over virtio-mmio."""

    def __init__(self, config=None, mem_size=16 << 20, event_idx=False):
        self.mem = FakeGuestMemory(mem_size)
        self.out = [bytearray(), bytearray()]
        self.dev = VirtioConsole(
            [self.out[0].extend, self.out[1].extend], config or ConsoleConfig(), Counts()
        )
        self.irqs = 0
        self.t = VirtioMmio(self.dev, self.mem, irq=self._irq, event_idx=event_idx)
        self.drv = MmioDriver(self.t)
        self.q = {}
        self.event_idx = event_idx

    def _irq(self):
        self.irqs += 1

    def probe(self):
        assert self.drv.init() & m.STATUS_FEATURES_OK
        assert self.t.read(m.CONFIG + 4, 4) == struct.pack("<I", 2)  # max_nr_ports
        base = 0x100000
        for i in range(self.dev.num_queues):
            self.q[i] = MockVirtqDriver(self.mem, base, 64, event_idx=self.event_idx)
            self.q[i]._heap = base + 0x2000
            self.drv.setup_queue(i, self.q[i])
            base += 0x100000
        self.drv.driver_ok()
        for _ in range(8):
            self.q[c.CONTROL_RX_QUEUE].add(writable=[4096])
        self.drv.notify(c.CONTROL_RX_QUEUE)
        self.send_ctrl(c.VIRTIO_CONSOLE_BAD_ID, c.VIRTIO_CONSOLE_DEVICE_READY, 1)

    def send_ctrl(self, port, event, value):
        self.q[c.CONTROL_TX_QUEUE].add([CTRL.pack(port, event, value)])
        self.drv.notify(c.CONTROL_TX_QUEUE)
        # __send_control_msg spins until the buffer is used: it must be at once
        assert self.q[c.CONTROL_TX_QUEUE].used(), "control buffer not consumed synchronously"

    def ctrl_msgs(self):
        msgs = []
        for u in self.q[c.CONTROL_RX_QUEUE].used():
            port, event, value = CTRL.unpack(u.data[:8])
            msgs.append((port, event, value, u.data[8:]))
            self.q[c.CONTROL_RX_QUEUE].add(writable=[4096])  # re-add like add_inbuf
        self.drv.notify(c.CONTROL_RX_QUEUE)
        return msgs

    def add_port(self, port, buffers=4):
        """add_port(): fill its receive queue, then PORT_READY."""
        for _ in range(buffers):
            self.q[c.rx_queue(port)].add(writable=[256])
        self.drv.notify(c.rx_queue(port))
        self.send_ctrl(port, c.VIRTIO_CONSOLE_PORT_READY, 1)

    def handshake(self, bulk_buffers=4):
        self.probe()
        msgs = self.ctrl_msgs()
        assert [(p, e) for p, e, *_ in msgs] == [(0, c.VIRTIO_CONSOLE_PORT_ADD), (1, 1)]
        for port in (0, 1):
            self.add_port(port, 4 if port == 0 else bulk_buffers)
        return self.ctrl_msgs()

    def write_port(self, port, data):
        self.q[c.tx_queue(port)].add([data])
        self.drv.notify(c.tx_queue(port))
        return self.q[c.tx_queue(port)].used()

    def received(self, port):
        return b"".join(u.data for u in self.q[c.rx_queue(port)].used())


def test_linux_handshake_sequence():
    g = Guest()
    msgs = g.handshake()
    assert msgs == [
        (0, c.VIRTIO_CONSOLE_CONSOLE_PORT, 1, b""),
        (0, c.VIRTIO_CONSOLE_PORT_OPEN, 1, b""),
        (1, c.VIRTIO_CONSOLE_PORT_NAME, 1, NAME.encode()),
        (1, c.VIRTIO_CONSOLE_PORT_OPEN, 1, b""),
    ]
    assert g.irqs > 0


def test_guest_output_reaches_sinks():
    g = Guest()
    g.handshake()
    assert len(g.write_port(0, b"console line\n")) == 1
    g.write_port(1, b"\x01bulk-frame")
    g.write_port(1, b"second")
    assert bytes(g.out[0]) == b"console line\n"
    assert bytes(g.out[1]) == b"\x01bulk-framesecond"


def test_host_input_waits_for_guest_open_then_flows():
    g = Guest()
    g.handshake()
    assert g.dev.send(1, b"for bulk") == 8
    assert g.received(1) == b""  # nobody opened vport0p1 yet: Linux would discard it
    assert g.dev.pending(1) == 8
    g.send_ctrl(1, c.VIRTIO_CONSOLE_PORT_OPEN, 1)
    assert g.received(1) == b"for bulk" and g.dev.pending(1) == 0
    g.send_ctrl(0, c.VIRTIO_CONSOLE_PORT_OPEN, 1)  # init_port_console()
    assert g.dev.send(0, b"cmd\n") == 4
    assert g.received(0) == b"cmd\n"


def test_host_input_split_over_small_buffers_and_resumed():
    g = Guest()
    g.handshake()
    g.send_ctrl(0, c.VIRTIO_CONSOLE_PORT_OPEN, 1)
    data = bytes(range(256)) * 5  # 1280 bytes; 4 posted buffers of 256
    assert g.dev.send(0, data) == len(data)
    got = g.received(0)
    assert got == data[:1024] and g.dev.pending(0) == 256
    g.q[0].add(writable=[256])
    g.drv.notify(0)
    assert got + g.received(0) == data


def test_host_input_bounded():
    g = Guest(ConsoleConfig(rx_limit=100))
    assert g.dev.send(1, b"x" * 150) == 100
    assert g.dev.send(1, b"y") == 0
    with pytest.raises(ValueError):
        g.dev.send(5, b"z")


def test_host_input_before_driver_survives_probe_reset():
    g = Guest()
    g.dev.send(0, b"early")
    g.handshake()
    g.send_ctrl(0, c.VIRTIO_CONSOLE_PORT_OPEN, 1)
    assert g.received(0) == b"early"


def test_guest_close_stops_delivery():
    g = Guest()
    g.handshake()
    g.send_ctrl(1, c.VIRTIO_CONSOLE_PORT_OPEN, 1)
    g.send_ctrl(1, c.VIRTIO_CONSOLE_PORT_OPEN, 0)
    assert not g.dev.guest_open(1)
    g.dev.send(1, b"held")
    assert g.received(1) == b"" and g.dev.pending(1) == 4


def test_failing_sink_counted_not_blocking():
    g = Guest()

    def broken(data):
        raise BlockingIOError

    g.dev._sinks[1] = broken
    g.handshake()
    assert len(g.write_port(1, b"12345")) == 1  # buffer still returned
    assert g.dev.metrics.lost == 5


def test_oversized_chain_truncated_and_counted():
    g = Guest(ConsoleConfig(max_chain_bytes=1000))
    g.handshake()
    g.write_port(1, b"z" * 3000)
    assert bytes(g.out[1]) == b"z" * 1000 and g.dev.metrics.lost == 2000


def test_hostile_control_messages():
    g = Guest()
    g.handshake()
    g.send_ctrl(7, c.VIRTIO_CONSOLE_PORT_READY, 1)  # port beyond max_nr_ports
    g.send_ctrl(0, 99, 1)  # unknown event
    g.q[c.CONTROL_TX_QUEUE].add([b"\x01\x02"])  # short message
    g.drv.notify(c.CONTROL_TX_QUEUE)
    assert g.dev.metrics.bad == 3
    for _ in range(200):  # a flood of PORT_READY: pending replies stay bounded
        g.q[c.CONTROL_TX_QUEUE].add([CTRL.pack(1, c.VIRTIO_CONSOLE_PORT_READY, 1)])
        g.drv.notify(c.CONTROL_TX_QUEUE)
        g.q[c.CONTROL_TX_QUEUE].used()
    assert len(g.dev.state().pending_control) <= ConsoleConfig().max_pending_control
    assert not g.drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET


def test_hostile_ring_marks_needs_reset_and_host_send_is_safe():
    g = Guest()
    g.handshake()
    g.send_ctrl(1, c.VIRTIO_CONSOLE_PORT_OPEN, 1)
    rxq = g.q[c.rx_queue(1)]
    rxq.write_desc(10, 0xFFFF_FFFF_0000, 64, 2)  # writable buffer outside RAM
    rxq.publish(10)
    rxq.used()
    for _ in range(4):  # consume the good buffers first
        g.dev.send(1, b"a" * 256)
    g.dev.send(1, b"boom")
    assert g.drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET
    assert g.dev.send(1, b"more") == 4  # queued, nothing raised, nothing processed
    g.write_port(1, b"ignored")
    assert b"ignored" not in bytes(g.out[1])


def test_event_idx_handshake():
    g = Guest(event_idx=True)
    assert len(g.handshake()) == 4
    g.write_port(1, b"x")
    assert bytes(g.out[1]) == b"x"


def test_state_roundtrip():
    g = Guest()
    g.handshake()
    g.send_ctrl(1, c.VIRTIO_CONSOLE_PORT_OPEN, 1)
    g.dev.send(0, b"pending")
    st = g.dev.state()
    dev2 = VirtioConsole.from_state(st, [lambda b: None] * 2)
    assert dev2.state() == st and dev2.guest_open(1) and dev2.pending(0) == 7


def test_config_validation():
    with pytest.raises(ValueError):
        ConsoleConfig(port_names=("bad name\n",))
    with pytest.raises(ValueError):
        ConsoleConfig(port_names=())
    with pytest.raises(ValueError):
        VirtioConsole([print], ConsoleConfig())
    dev = VirtioConsole([print] * 3, ConsoleConfig(port_names=(None, "a", "b")))
    assert dev.num_queues == 8 and dev.read_config(4, 4) == struct.pack("<I", 3)
    assert dev.read_config(100, 4) == b"\0" * 4


def test_bulk_throughput_figure(capsys):
    g = Guest(mem_size=64 << 20)
    g.handshake()
    chunk = b"\xab" * 32768  # Linux caps one port write at 32 KiB
    txq = g.q[c.tx_queue(1)]
    addr = txq.put(chunk)
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        txq.write_desc(0, addr, len(chunk))
        txq.publish(0)
        g.t.notify(c.tx_queue(1))
    dt = time.perf_counter() - t0
    assert len(g.out[1]) == n * len(chunk)
    with capsys.disabled():
        print(
            f"\nvirtio-console bulk: {n * len(chunk) / dt / 1e6:.0f} MB/s, "
            f"{dt / n * 1e6:.1f} us per 32 KiB notify"
        )


def test_host_send_and_guest_notify_concurrently():
    """A host thread sending while a 'vCPU' thread posts buffers and kicks: no deadlock, no loss."""
    import threading

    g = Guest()
    g.handshake()
    g.send_ctrl(1, c.VIRTIO_CONSOLE_PORT_OPEN, 1)
    payload = bytes(range(256)) * 64  # 16 KiB in 100-byte pieces
    pieces = [payload[i : i + 100] for i in range(0, len(payload), 100)]
    stop = threading.Event()
    got = bytearray()
    rxq = g.q[c.rx_queue(1)]
    lock = threading.Lock()  # the mock driver itself is single-threaded

    def vcpu():
        while not stop.is_set():
            with lock:
                got.extend(g.received(1))
                while len(rxq._free) > 0:
                    rxq.add(writable=[64])
            g.t.notify(c.rx_queue(1))
            g.t.read(m.INTERRUPT_STATUS, 4)

    th = threading.Thread(target=vcpu, name="vcpu0")
    th.start()
    for p in pieces:
        while True:
            with lock:
                n = g.dev.send(1, p)
            p = p[n:]
            if not p:
                break
    deadline = time.monotonic() + 10
    while g.dev.pending(1) and time.monotonic() < deadline:
        time.sleep(0.001)
    stop.set()
    th.join(timeout=10)
    assert not th.is_alive()
    with lock:
        got.extend(g.received(1))
    assert bytes(got) == payload


# -- host -> guest on the bulk port (port 1): the run's inputs ----------------------------

PAGE = 4096


class LinuxRx:
    """Port 1's receive queue as drivers/char/virtio_console.c keeps it: PAGE_SIZE buffers
    (fill_queue), each re-posted once its data was read (add_inbuf)."""

    def __init__(self, g, port=1, n=16):
        self.g, self.qi = g, c.rx_queue(port)
        self.q = g.q[self.qi]
        self.bufs = {}
        for _ in range(n):
            head = self.q._free.pop(0)
            self.bufs[head] = self.q.alloc(PAGE)
            self.q.write_desc(head, self.bufs[head], PAGE, VIRTQ_DESC_F_WRITE)
            self.q.publish(head)
        g.drv.notify(self.qi)

    def drain(self):
        out = []
        end = self.q.used_idx()
        while self.q.last_used != end:
            slot = self.q.last_used % self.q.size
            head, length = struct.unpack("<II", self.g.mem.read(self.q.used_ring + 4 + 8 * slot, 8))
            self.q.last_used = (self.q.last_used + 1) & 0xFFFF
            assert head in self.bufs and length <= PAGE  # never past the driver's buffer
            out.append(self.g.mem.read(self.bufs[head], length))
            self.q.publish(head)
        self.g.drv.notify(self.qi)
        return b"".join(out)


def bulk_guest(config=None, buffers=0):
    g = Guest(config)
    g.handshake(bulk_buffers=buffers)
    g.send_ctrl(1, c.VIRTIO_CONSOLE_PORT_OPEN, 1)  # PID 1 opened /dev/vport0p1
    return g


def test_bulk_stream_reaches_the_guest_whole_through_page_buffers():
    g = bulk_guest(ConsoleConfig(rx_limit=64 << 10))
    rx = LinuxRx(g)
    data = os.urandom(2 << 20)
    got, sent = bytearray(), 0
    for _ in range(10_000):
        sent += g.dev.send(1, data[sent : sent + 100_000])
        assert g.dev.pending(1) <= 64 << 10  # bounded however much the host offers
        got += rx.drain()
        if len(got) == len(data):
            break
    assert bytes(got) == data and g.dev.pending(1) == 0
    assert g.out[1] == bytearray() and g.received(0) == b""  # nothing leaked to other paths


def test_wait_room_blocks_until_the_guest_reads():
    g = bulk_guest(ConsoleConfig(rx_limit=8192))
    rx = LinuxRx(g, n=1)
    assert g.dev.send(1, b"a" * 20000) == 8192  # 4 KiB went to the one buffer at once
    assert g.dev.pending(1) == 4096 and g.dev.wait_room(1, 0.0)
    assert g.dev.send(1, b"b" * 20000) == 4096
    t0 = time.monotonic()
    assert not g.dev.wait_room(1, 0.05) and time.monotonic() - t0 >= 0.05
    got = bytearray()
    reader = threading.Timer(0.1, lambda: got.extend(rx.drain()))
    reader.start()
    t0 = time.monotonic()
    assert g.dev.wait_room(1, 5.0)
    assert 0.05 < time.monotonic() - t0 < 4
    reader.join()
    assert bytes(got) == b"a" * 4096


def test_hostile_rx_buffer_without_writable_space_loses_nothing():
    g = bulk_guest()
    g.q[c.rx_queue(1)].add(readable=[b"device-readable only"])  # no room to write into
    assert g.dev.send(1, b"payload") == 7
    used = g.q[c.rx_queue(1)].used()
    assert [u.length for u in used] == [0] and g.dev.pending(1) == 7
    assert not g.drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET
    g.q[c.rx_queue(1)].add(writable=[PAGE])
    g.drv.notify(c.rx_queue(1))
    assert g.received(1) == b"payload"


def test_hostile_huge_rx_buffer_gets_only_what_is_pending():
    g = bulk_guest()
    q = g.q[c.rx_queue(1)]
    head = q._free.pop(0)
    addr = q.alloc(64)
    g.mem.write(addr + 64, b"untouched")
    q.write_desc(head, addr, 4 << 20, VIRTQ_DESC_F_WRITE)  # 4 MiB of room for 64 bytes
    q.publish(head)
    g.dev.send(1, b"x" * 64)
    g.drv.notify(c.rx_queue(1))
    end = q.used_idx()
    _, length = struct.unpack("<II", g.mem.read(q.used_ring + 4 + 8 * ((end - 1) % q.size), 8))
    assert length == 64 and g.mem.read(addr, 64) == b"x" * 64
    assert g.mem.read(addr + 64, 9) == b"untouched"
    # One claiming 4 GiB runs past guest RAM: refused whole (the queue probes both ends).
    head = q._free.pop(0)
    q.write_desc(head, addr, 0xFFFF_FFFF, VIRTQ_DESC_F_WRITE)
    q.publish(head)
    g.dev.send(1, b"y" * 64)
    assert g.drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET
    assert g.mem.read(addr, 64) == b"x" * 64


def test_broken_device_bounds_the_host_and_never_blocks_it():
    g = bulk_guest(ConsoleConfig(rx_limit=1000))
    rxq = g.q[c.rx_queue(1)]
    rxq.write_desc(20, 0xFFFF_FFFF_0000, 64, VIRTQ_DESC_F_WRITE)  # outside guest RAM
    rxq.publish(20)
    g.dev.send(1, b"boom")
    assert g.drv.r32(m.STATUS) & m.STATUS_DEVICE_NEEDS_RESET
    assert g.dev.send(1, b"y" * 5000) == 996  # held, bounded, nothing raised
    t0 = time.monotonic()
    assert not g.dev.wait_room(1, 0.05) and time.monotonic() - t0 < 2


def test_bulk_input_waits_for_the_guest_to_open_the_port():
    g = Guest()
    g.handshake(bulk_buffers=0)
    LinuxRx(g)
    assert g.dev.send(1, b"early run document") == 18
    assert g.received(1) == b"" and g.dev.pending(1) == 18  # Linux would drop it: held
