"""virtio-console (device id 3) with VIRTIO_CONSOLE_F_MULTIPORT, as Linux's driver expects it.

Queues (drivers/char/virtio_console.c init_vqs()): 0/1 are port 0 receive/transmit, 2/3 the
control receive/transmit queues, then 4/5 port 1, 6/7 port 2, and so on.

Control protocol (include/uapi/linux/virtio_console.h; host side as QEMU does it):

* guest DEVICE_READY(1) -> host PORT_ADD(id) for every port;
* guest PORT_READY(id, 1) -> host CONSOLE_PORT(id, 1) for port 0, PORT_NAME(id)+name if the
  port is named, then PORT_OPEN(id, 1) (the host end is always connected, so writes to
  /dev/vport*p* never block on it);
* guest PORT_OPEN(id, v) records whether the guest has the port open. Host-to-guest bytes
  are delivered only while it is: Linux discards data that reaches a port nobody opened
  (in_intr()), and the console port sends PORT_OPEN(1) from init_port_console().

Guest-to-host data goes to the port's sink as soon as the guest notifies; Linux busy-waits
for control and hvc buffers to be used, so the engine must run :meth:`process_queue` promptly.

Host-to-guest data (:meth:`VirtioConsole.send`) is held per port up to ``rx_limit`` bytes and
copied into the receive buffers the driver posts (Linux posts PAGE_SIZE buffers and re-posts
each one it has read), in order, never more than a buffer's writable length. A host writer
that finds the port full waits in :meth:`VirtioConsole.wait_room` until the guest consumed some.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vmm_proc.devices.log_budget import LogBudget
from vmm_proc.devices.virtio.device import VirtioContext
from vmm_proc.devices.virtio.queue import QueueError, iter_readable, write_writable
from vmm_proc.mem.access import GuestMemoryError

__all__ = ("ConsoleConfig", "ConsoleMetrics", "ConsoleState", "VirtioConsole")

log = logging.getLogger(__name__)

VIRTIO_ID_CONSOLE = 3
VIRTIO_CONSOLE_F_SIZE = 1 << 0
VIRTIO_CONSOLE_F_MULTIPORT = 1 << 1

VIRTIO_CONSOLE_BAD_ID = 0xFFFFFFFF
VIRTIO_CONSOLE_DEVICE_READY = 0
VIRTIO_CONSOLE_PORT_ADD = 1
VIRTIO_CONSOLE_PORT_REMOVE = 2
VIRTIO_CONSOLE_PORT_READY = 3
VIRTIO_CONSOLE_CONSOLE_PORT = 4
VIRTIO_CONSOLE_RESIZE = 5
VIRTIO_CONSOLE_PORT_OPEN = 6
VIRTIO_CONSOLE_PORT_NAME = 7

CONTROL_RX_QUEUE = 2
CONTROL_TX_QUEUE = 3
_CONTROL = struct.Struct("<IHH")  # struct virtio_console_control: id, event, value
_CONFIG = struct.Struct("<HHII")  # cols, rows, max_nr_ports, emerg_wr
MAX_NAME_LEN = 255
MAX_CONTROL_TX = 64  # control messages read per notification before yielding


def rx_queue(port: int) -> int:
    """Queue index on which the guest posts receive buffers for ``port``."""
    return 0 if port == 0 else 2 * (port + 1)


def tx_queue(port: int) -> int:
    """Queue index on which the guest sends ``port``'s output."""
    return rx_queue(port) + 1


@dataclass(frozen=True)
class ConsoleConfig:
    """Static configuration.

    :ivar port_names: one entry per port (max_nr_ports = its length); port 0 is the console
        (guest /dev/hvc0); a name shows in /sys/class/virtio-ports/vport*p<N>/name.
    :ivar queue_size: QueueNumMax of every queue.
    :ivar rx_limit: host-to-guest bytes held per port while the guest has no buffers.
    :ivar max_chain_bytes: guest-to-host bytes taken from one chain (Linux sends <= 32 KiB;
        the excess of a larger chain is dropped and counted).
    :ivar max_pending_control: control messages held for the guest.
    """

    port_names: tuple[str | None, ...] = (None, "org.schedlab.bulk")
    queue_size: int = 256
    rx_limit: int = 1 << 20
    max_chain_bytes: int = 1 << 20
    max_pending_control: int = 64

    def __post_init__(self) -> None:
        if not 1 <= len(self.port_names) <= 31:
            raise ValueError("virtio-console needs 1 to 31 ports")
        for name in self.port_names:
            if name is not None and not (
                0 < len(name) <= MAX_NAME_LEN and name.isascii() and name.isprintable()
            ):
                raise ValueError(f"bad port name {name!r}")


class ConsoleMetrics(Protocol):
    """Event hooks; implement only what you count."""

    def tx(self, port: int, n: int) -> None: ...

    def tx_lost(self, port: int, n: int) -> None: ...

    def rx(self, port: int, n: int) -> None: ...

    def bad_control(self) -> None: ...


class NoConsoleMetrics:
    """The no-op default."""

    def tx(self, port: int, n: int) -> None:
        pass

    def tx_lost(self, port: int, n: int) -> None:
        pass

    def rx(self, port: int, n: int) -> None:
        pass

    def bad_control(self) -> None:
        pass


@dataclass
class ConsoleState:
    """Per-driver protocol state and host bytes not yet delivered."""

    guest_open: list[bool] = field(default_factory=list)
    pending_control: list[bytes] = field(default_factory=list)
    rx_pending: list[bytes] = field(default_factory=list)


class VirtioConsole:
    """The virtio-console device model (pair it with a transport such as VirtioMmio).

    :param sinks: one per port, called with guest output; must not block. ``OSError`` from
        a sink is counted as lost output.
    :param config: ports and bounds.
    :param metrics: event hooks (default: none).
    """

    device_id = VIRTIO_ID_CONSOLE

    def __init__(
        self,
        sinks: Sequence[Callable[[bytes], None]],
        config: ConsoleConfig | None = None,
        metrics: ConsoleMetrics | None = None,
    ) -> None:
        self.config = config or ConsoleConfig()
        self.nports = len(self.config.port_names)
        if len(sinks) != self.nports:
            raise ValueError(f"{len(sinks)} sinks for {self.nports} ports")
        self._sinks = list(sinks)
        self.metrics: ConsoleMetrics = metrics or NoConsoleMetrics()
        self.num_queues = 2 * (self.nports + 1)
        self.queue_max_size = self.config.queue_size
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # host bytes delivered: room to send
        self._ctx: VirtioContext | None = None
        self._rx = [bytearray() for _ in range(self.nports)]
        self._log_budget = LogBudget()
        self._load(ConsoleState())

    def _load(self, s: ConsoleState) -> None:
        self._guest_open = (list(s.guest_open) + [False] * self.nports)[: self.nports]
        self._control: deque[bytes] = deque(s.pending_control[: self.config.max_pending_control])
        for i, data in enumerate(s.rx_pending[: self.nports]):
            self._rx[i][:] = data[: self.config.rx_limit]

    def state(self) -> ConsoleState:
        """Snapshot protocol state and undelivered host bytes."""
        with self._lock:
            return ConsoleState(
                list(self._guest_open), list(self._control), [bytes(b) for b in self._rx]
            )

    @classmethod
    def from_state(
        cls,
        state: ConsoleState,
        sinks: Sequence[Callable[[bytes], None]],
        config: ConsoleConfig | None = None,
        metrics: ConsoleMetrics | None = None,
    ) -> VirtioConsole:
        """Rebuild the device; the transport's from_state re-activates it."""
        dev = cls(sinks, config, metrics)
        dev._load(state)
        return dev

    # -- VirtioDevice ------------------------------------------------------------------------

    def features(self) -> int:
        return VIRTIO_CONSOLE_F_MULTIPORT

    def read_config(self, offset: int, size: int) -> bytes:
        raw = _CONFIG.pack(0, 0, self.nports, 0)
        if offset < 0:
            return bytes(size)
        return raw[offset : offset + size].ljust(size, b"\x00")

    def write_config(self, offset: int, data: bytes) -> None:
        pass  # emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE, which we do not offer

    def activate(self, ctx: VirtioContext) -> None:
        with self._lock:
            self._ctx = ctx

    def reset(self) -> None:
        """Forget the driver; undelivered host bytes are kept for the next one."""
        with self._lock:
            self._ctx = None
            self._guest_open = [False] * self.nports
            self._control.clear()

    def process_queue(self, index: int) -> None:
        with self._lock:
            ctx = self._ctx
            if ctx is None:
                return
            if index == CONTROL_TX_QUEUE:
                self._control_tx(ctx)
            elif index == CONTROL_RX_QUEUE:
                self._control_rx(ctx)
            elif index < self.num_queues:
                port = 0 if index < 2 else index // 2 - 1
                if index % 2:
                    self._port_tx(ctx, port)
                else:
                    self._port_rx(ctx, port)

    # -- host side ---------------------------------------------------------------------------

    def send(self, port: int, data: bytes | memoryview) -> int:
        """Queue host-to-guest bytes for ``port``; returns how many fit under ``rx_limit``."""
        if not 0 <= port < self.nports:
            raise ValueError(f"no port {port}")
        with self._lock:
            buf = self._rx[port]
            n = min(len(data), self.config.rx_limit - len(buf))
            buf += data[:n]
            self._host_kick(lambda ctx: self._port_rx(ctx, port))
        return n

    def wait_room(self, port: int, timeout_s: float) -> bool:
        """Wait until ``port`` holds less than ``rx_limit`` host bytes, at most ``timeout_s``.

        :return: whether there is room now.
        """
        deadline = time.monotonic() + timeout_s
        with self._room:
            while len(self._rx[port]) >= self.config.rx_limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._room.wait(left)
            return True

    def pending(self, port: int) -> int:
        """Host bytes for ``port`` still waiting for guest buffers."""
        with self._lock:
            return len(self._rx[port])

    def guest_open(self, port: int) -> bool:
        """Whether the guest has ``port`` open (PORT_OPEN 1 seen)."""
        with self._lock:
            return self._guest_open[port]

    def _host_kick(self, work: Callable[[VirtioContext], None]) -> None:
        """Run queue work from a host thread; failures mark the device as needing reset."""
        ctx = self._ctx
        if ctx is None or ctx.broken():
            return
        try:
            work(ctx)
        except (QueueError, GuestMemoryError) as e:
            ctx.fail(str(e))

    # -- data queues ---------------------------------------------------------------------------

    def _port_tx(self, ctx: VirtioContext, port: int) -> None:
        q = ctx.queues[tx_queue(port)]
        limit = self.config.max_chain_bytes
        used = False
        for _ in range(q.size):
            chain = q.pop(ctx.mem)
            if chain is None:
                break
            for chunk in iter_readable(ctx.mem, chain, limit):
                self._emit(port, chunk)
            if chain.readable_len > limit:
                self.metrics.tx_lost(port, chain.readable_len - limit)
            q.add_used(ctx.mem, chain.head, 0)
            used = True
        if used:
            ctx.signal_if_needed(tx_queue(port))

    def _emit(self, port: int, data: bytes) -> None:
        try:
            self._sinks[port](data)
        except OSError:
            self.metrics.tx_lost(port, len(data))
        else:
            self.metrics.tx(port, len(data))

    def _port_rx(self, ctx: VirtioContext, port: int) -> None:
        buf = self._rx[port]
        qi = rx_queue(port)
        q = ctx.queues[qi]
        if not buf or not self._guest_open[port] or not q.ready:
            return
        used = False
        for _ in range(q.size):
            if not buf:
                break
            chain = q.pop(ctx.mem)
            if chain is None:
                break
            n = write_writable(ctx.mem, chain, bytes(buf[: chain.writable_len]))
            del buf[:n]
            q.add_used(ctx.mem, chain.head, n)
            self.metrics.rx(port, n)
            used = True
        if used:
            self._room.notify_all()
            ctx.signal_if_needed(qi)

    # -- control queues ------------------------------------------------------------------------

    def _queue_control(self, port: int, event: int, value: int = 1, extra: bytes = b"") -> None:
        if len(self._control) >= self.config.max_pending_control:
            self.metrics.bad_control()  # a driver flooding us with requests
            return
        self._control.append(_CONTROL.pack(port, event, value) + extra)

    def _control_rx(self, ctx: VirtioContext) -> None:
        q = ctx.queues[CONTROL_RX_QUEUE]
        if not self._control or not q.ready:
            return
        used = False
        for _ in range(q.size):
            if not self._control:
                break
            chain = q.pop(ctx.mem)
            if chain is None:
                break
            msg = self._control.popleft()
            if chain.writable_len < len(msg):
                self.metrics.bad_control()  # Linux posts PAGE_SIZE buffers
            n = write_writable(ctx.mem, chain, msg)
            q.add_used(ctx.mem, chain.head, n)
            used = True
        if used:
            ctx.signal_if_needed(CONTROL_RX_QUEUE)

    def _control_tx(self, ctx: VirtioContext) -> None:
        q = ctx.queues[CONTROL_TX_QUEUE]
        used = False
        for _ in range(q.size):
            chain = q.pop(ctx.mem)
            if chain is None:
                break
            msg = b"".join(iter_readable(ctx.mem, chain, _CONTROL.size))
            q.add_used(ctx.mem, chain.head, 0)
            used = True
            if len(msg) < _CONTROL.size:
                self.metrics.bad_control()
                continue
            self._handle_control(*_CONTROL.unpack(msg))
        if used:
            ctx.signal_if_needed(CONTROL_TX_QUEUE)
        self._control_rx(ctx)
        for port in range(self.nports):
            self._port_rx(ctx, port)

    def _handle_control(self, port: int, event: int, value: int) -> None:
        if event == VIRTIO_CONSOLE_DEVICE_READY:
            if value != 1:
                self.metrics.bad_control()
                if self._log_budget.allow():
                    log.warning("virtio-console: guest driver failed to set up (DEVICE_READY 0)")
                return
            for p in range(self.nports):
                self._queue_control(p, VIRTIO_CONSOLE_PORT_ADD)
            return
        if port >= self.nports:
            self.metrics.bad_control()
            return
        if event == VIRTIO_CONSOLE_PORT_READY:
            if value != 1:
                self.metrics.bad_control()
                if self._log_budget.allow():
                    log.warning("virtio-console: guest failed to add port %d", port)
                return
            if port == 0:
                self._queue_control(port, VIRTIO_CONSOLE_CONSOLE_PORT)
            name = self.config.port_names[port]
            if name is not None:
                self._queue_control(port, VIRTIO_CONSOLE_PORT_NAME, 1, name.encode("ascii"))
            self._queue_control(port, VIRTIO_CONSOLE_PORT_OPEN)
        elif event == VIRTIO_CONSOLE_PORT_OPEN:
            self._guest_open[port] = bool(value)
        elif event != VIRTIO_CONSOLE_RESIZE:
            self.metrics.bad_control()
