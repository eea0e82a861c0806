"""Device models for the KVM engine: pure register state machines with injected side effects.

No device knows about the run loop, sockets or its base address. The engine maps them on a
:class:`~vmm_proc.devices.bus.Bus` and wires ``irq`` callables to irqfds.

API summary
-----------
``bus.Bus(name, limit)``
    ``insert(base, length, device, name="")`` (raises ``BusConflictError`` on overlap),
    ``read(addr, size) -> bytes``, ``write(addr, data)``. Unmapped: all-ones, counted in
    ``bus.unmapped`` and ``unmapped_count(addr)``, logged for the first few addresses only.
``serial.Serial(irq, out, metrics=None)``
    16550A at 8 offsets. ``read(offset, 1)``/``write(offset, b)``; ``enqueue(data) -> int``
    (bounded by ``FIFO_SIZE``), ``fifo_space()``, ``state()``/``from_state()``. ``irq()`` is
    called on each rising edge of the interrupt line (suits an irqfd).
"""
