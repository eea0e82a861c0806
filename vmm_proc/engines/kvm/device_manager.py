"""DeviceManager: builds the legacy and virtio devices and wires them to KVM and the engine.

Wiring, not models: the UARTs, the i8042 and the virtio-mmio transport are
``vmm_proc.devices`` state machines. Here they get their bus ranges, an irqfd per interrupt
line (the in-kernel irqchip raises the GSI with no vCPU exit), an ioeventfd per virtqueue
(served on the device thread) and their output sinks (``EngineHooks.stream``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from guest.wire import SHELL_PORT_NAME
from vmm_proc.arch.x86_64.layout import COM1, COM2, SLEEP_CONTROL_PORT, virtio_mmio_slot
from vmm_proc.devices.bus import Bus
from vmm_proc.devices.i8042 import I8042
from vmm_proc.devices.i8042 import PORT_LENGTH as I8042_PORTS
from vmm_proc.devices.serial import Serial
from vmm_proc.devices.virtio.console import ConsoleConfig, VirtioConsole
from vmm_proc.devices.virtio.mmio import QUEUE_NOTIFY, STATUS, VirtioMmio
from vmm_proc.engines.kvm.boot_plan import MmioDevice
from vmm_proc.engines.kvm.devices_state import DevicesState
from vmm_proc.engines.kvm.eventfd import EventFd
from vmm_proc.engines.kvm.exit_dispatch import ShutdownLatch
from vmm_proc.engines.kvm.io_thread import IoThread
from vmm_proc.engines.kvm.sleep_control import PORT_LENGTH as SLEEP_PORTS
from vmm_proc.engines.kvm.sleep_control import SleepControl
from vmm_proc.mem.access import GuestMemoryAccess

__all__ = ("DeviceManager", "IrqVm", "I8042_PORT", "I8042_IRQ", "UART_PORTS")

log = logging.getLogger(__name__)

I8042_PORT = 0x60
I8042_IRQ = 1
UART_PORTS = 8
PIO_LIMIT = 1 << 16
BULK_PORT = 1  # virtio-console port 1: the guest's org.schedlab.bulk
SHELL_PORT = 2  # virtio-console port 2: the guest's org.schedlab.shell (schedlab shell)
_PORT_NAMES = (*ConsoleConfig().port_names, SHELL_PORT_NAME)

Stream = Callable[[str, bytes], None]


class IrqVm(Protocol):
    """The VmFd calls wiring needs (a fake in unit tests)."""

    def irqfd(self, eventfd: int, gsi: int, resamplefd: int | None = None) -> None: ...

    def ioeventfd(
        self, eventfd: int, addr: int, length: int, datamatch: int | None = None, pio: bool = False
    ) -> None: ...


class _NotifiedBeforeReset:
    """The MMIO face of a virtio transport that serves pending queue work before a reset.

    A guest that queues its last bulk frame and then reboots kicks the queue (an ioeventfd
    the device thread has not read yet) and, in device_shutdown(), resets the device: that
    kick happened first, so it is served first, as a synchronous device model would.
    """

    def __init__(self, transport: VirtioMmio) -> None:
        self._transport = transport

    def read(self, offset: int, size: int) -> bytes:
        return self._transport.read(offset, size)

    def write(self, offset: int, data: bytes) -> None:
        if offset == STATUS and data == bytes(4):
            for index in range(len(self._transport.queues)):
                self._transport.notify(index)
        self._transport.write(offset, data)


class DeviceManager:
    """All devices of one VM, their buses and eventfds, and the device thread.

    :param vm: where irqfds and ioeventfds are registered.
    :param stream: ``EngineHooks.stream``: named guest output.
    :param shutdown: the guest's exit requests (i8042 reset, ACPI S5) land here.
    :param on_error: a device thread failure, one line.
    :param tick: run periodically on the device thread (flushes batched console output).
    """

    def __init__(
        self,
        vm: IrqVm,
        stream: Stream,
        shutdown: ShutdownLatch,
        on_error: Callable[[str], None],
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.pio = Bus("pio", limit=PIO_LIMIT)
        self.mmio = Bus("mmio")
        self.io_thread = IoThread(on_error, tick=tick)
        self.uarts: dict[str, Serial] = {}
        self._vm = vm
        self._stream = stream
        self._shutdown = shutdown
        self._eventfds: list[EventFd] = []
        self._closed = False
        self.console: VirtioConsole | None = None
        self.console_transport: VirtioMmio | None = None
        self.i8042: I8042 | None = None
        self._restore: DevicesState | None = None

    def restore_from(self, state: DevicesState) -> None:
        """Build the devices added from now on from ``state`` instead of their reset state."""
        self._restore = state

    def state(self) -> DevicesState:
        """Every device model's state; vCPUs must be paused so no guest access races it.

        Queue work the device thread has not picked up yet is served first, so the saved
        rings and the saved device agree.
        """
        self._flush_virtio()
        t = self.console_transport
        return DevicesState(
            uarts={name: uart.state() for name, uart in self.uarts.items()},
            i8042=self.i8042.state() if self.i8042 is not None else None,
            console=self.console.state() if self.console is not None else None,
            console_transport=t.state() if t is not None else None,
        )

    # -- building -------------------------------------------------------------------------

    def add_legacy(self) -> None:
        """COM1 (console), COM2 (diag), the i8042 and the ACPI sleep registers."""
        for (port, irq), stream in ((COM1, "console"), (COM2, "diag")):
            self.add_serial(port, irq, stream)
        kbd_irq = self._irqfd(I8042_IRQ)
        saved = self._restore.i8042 if self._restore is not None else None
        self.i8042 = I8042(
            reset=lambda: self._shutdown.request("reset (i8042)"), irq=kbd_irq.signal, state=saved
        )
        self.pio.insert(I8042_PORT, I8042_PORTS, self.i8042, name="i8042")
        sleep = SleepControl(power_off=lambda: self._shutdown.request("power-off (ACPI S5)"))
        self.pio.insert(SLEEP_CONTROL_PORT, SLEEP_PORTS, sleep, name="acpi-sleep")

    def add_serial(self, port: int, gsi: int, stream: str) -> Serial:
        """A 16550 at ``port`` whose interrupt is GSI ``gsi`` and output goes to ``stream``."""
        evt = self._irqfd(gsi)
        saved = self._restore.uarts.get(stream) if self._restore is not None else None
        uart = Serial(irq=evt.signal, out=self._sink(stream), state=saved)
        self.pio.insert(port, UART_PORTS, uart, name=stream)
        self.uarts[stream] = uart
        return uart

    def add_virtio_console(self, mem: GuestMemoryAccess, slot: int = 0) -> list[MmioDevice]:
        """The virtio-mmio console in window ``slot``: port 0 -> "hvc0", port 1 -> "bulk",
        port 2 -> "shell".

        Each queue gets an ioeventfd on QueueNotify matching its index, so a notification
        costs no exit to this process's vCPU thread; the device thread processes it.

        :return: the device for the firmware tables.
        """
        base, size, gsi = virtio_mmio_slot(slot)
        irq = self._irqfd(gsi)
        sinks = [self._sink("hvc0"), self._sink("bulk"), self._sink("shell")]
        config = ConsoleConfig(port_names=_PORT_NAMES)
        saved = self._restore
        if saved is not None and saved.console is not None and saved.console_transport:
            console = VirtioConsole.from_state(saved.console, sinks, config)
            transport = VirtioMmio.from_state(saved.console_transport, console, mem, irq.signal)
        else:
            console = VirtioConsole(sinks, config)
            transport = VirtioMmio(console, mem, irq.signal)
        self.mmio.insert(
            base, size, _NotifiedBeforeReset(transport), name=f"virtio-console@{base:#x}"
        )
        for index in range(console.num_queues):
            evt = self._eventfd()
            self._vm.ioeventfd(evt.fd, base + QUEUE_NOTIFY, 4, datamatch=index)
            self.io_thread.add(evt, functools.partial(transport.notify, index))
        self.console, self.console_transport = console, transport
        return [MmioDevice(base, size, gsi)]

    def send_console(self, data: bytes) -> int:
        """Queue host-to-guest bytes on console port 0; returns how many were accepted."""
        if self.console is None:
            return 0
        return self.console.send(0, data)

    def send_bulk(self, data: bytes, timeout_s: float, port: int = BULK_PORT) -> int:
        """Queue host-to-guest bytes on the bulk port (console port 1; or ``port``), waiting
        up to ``timeout_s`` for the guest to make room; returns how many were accepted."""
        console = self.console
        if console is None:
            return 0
        view = memoryview(data)
        sent = 0
        deadline = time.monotonic() + timeout_s
        while True:
            sent += console.send(port, view[sent:])
            left = deadline - time.monotonic()
            if sent == len(view) or left <= 0 or not console.wait_room(port, left):
                return sent

    def bulk_pending(self) -> int:
        """Host bytes on the bulk port that the guest has not taken yet."""
        return self.console.pending(BULK_PORT) if self.console is not None else 0

    def _flush_virtio(self) -> None:
        # Buffers the guest queued without a notification we saw still reach their stream.
        t = self.console_transport
        if t is not None:
            for index in range(len(t.queues)):
                t.notify(index)

    def _sink(self, stream: str) -> Callable[[bytes], None]:
        def out(data: bytes) -> None:
            self._stream(stream, bytes(data))

        return out

    def _irqfd(self, gsi: int) -> EventFd:
        evt = self._eventfd()
        self._vm.irqfd(evt.fd, gsi)
        return evt

    def _eventfd(self) -> EventFd:
        evt = EventFd()
        self._eventfds.append(evt)
        return evt

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the device thread (after every device is added)."""
        self.io_thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the device thread and close every eventfd (idempotent).

        Call after the VM fd is closed or the vCPUs are finished: KVM keeps its own
        references to registered eventfds, so closing ours is safe either way.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.io_thread.stop(timeout)
            self._flush_virtio()
        finally:
            evts, self._eventfds = self._eventfds, []
            for evt in evts:
                evt.close()
