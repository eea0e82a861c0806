"""Device models for the KVM engine: pure register state machines with injected side effects.

No device knows about the run loop, sockets or its base address; the engine maps them on a
:class:`~vmm_proc.devices.bus.Bus` and wires ``irq`` callables to irqfds. Sinks
(``Callable[[bytes], None]``) must never block; an ``OSError`` from one is counted as lost
output and the guest carries on. Each device has ``state()``/``from_state()`` and a metrics
``Protocol`` with a no-op default. All devices are thread-safe (one lock each).

API summary
-----------
``bus.Bus(name, limit=1 << 64)``
    ``insert(base, length, device, name="")`` (``BusConflictError`` on overlap/bad range),
    ``read(addr, size) -> bytes``, ``write(addr, data)``, ``find(addr)``. Unmapped or
    straddling accesses read all-ones, drop writes, are counted in ``bus.unmapped`` and
    ``unmapped_count(addr)`` (first 256 addresses) and logged for the first 16 only.
``serial.Serial(irq, out, metrics=None)``
    16550A, 8 one-byte registers: ``read(offset, 1)``/``write(offset, b)``;
    ``enqueue(data) -> accepted`` (bounded by ``FIFO_SIZE`` = 64), ``fifo_space()``.
    ``irq()`` on each rising edge of the UART's interrupt line. Map at 0x3F8, length 8.
``i8042.I8042(reset, irq, metrics=None)``
    Map at 0x60 with ``PORT_LENGTH`` = 5 (offset 0 data, 4 status/command). ``reset()`` is
    called for command 0xFE (``reboot=k``); ``irq`` is IRQ 1.
``virtio.queue.SplitQueue(max_size)``
    Device side of a split ring: ``validate(mem)``, ``pop(mem) -> DescriptorChain | None``,
    ``add_used(mem, head, length)``, ``needs_interrupt(mem)``; ``iter_readable`` /
    ``write_writable`` move data. Guest errors raise ``QueueError`` (never past the transport).
``virtio.mmio.VirtioMmio(device, mem, irq, *, indirect_desc=True, event_idx=False)``
    virtio-mmio v2 window of ``MMIO_SIZE`` = 0x200 bytes: ``read``/``write`` for the bus,
    ``notify(queue_index)`` for an ioeventfd thread. ``irq()`` once per signalled interrupt
    (used buffer or config change). A hostile ring sets DEVICE_NEEDS_RESET and stops queues.
``virtio.console.VirtioConsole(sinks, config=ConsoleConfig(), metrics=None)``
    virtio-console with MULTIPORT; ``ConsoleConfig.port_names`` defaults to
    ``(None, "org.schedlab.bulk")``: port 0 is /dev/hvc0, port 1 the named vport.
    ``send(port, data) -> accepted`` (bounded by ``rx_limit``), ``pending(port)``,
    ``guest_open(port)``. Wrap it: ``VirtioMmio(VirtioConsole([hvc_sink, bulk_sink]), mem, irq)``.
"""
