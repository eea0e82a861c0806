"""IoThread: the device thread that serves ioeventfds (queue notifications) off the vCPUs.

Each registered eventfd has a handler; a private wakeup eventfd lets ``stop()`` end the
``select`` promptly. Handlers run on this one thread, so a device never sees two
notifications at once from here (vCPU-side register accesses still take the device lock).
"""

from __future__ import annotations

import logging
import selectors
import threading
from collections.abc import Callable

from vmm_proc.engines.kvm.eventfd import EventFd

__all__ = ("IoThread", "IoThreadError")

log = logging.getLogger(__name__)

Handler = Callable[[], None]
OnError = Callable[[str], None]


class IoThreadError(Exception):
    """The device thread did not end in time."""


class IoThread:
    """Runs ``handler()`` whenever its eventfd fires; ``on_error`` hears about handler failures.

    :param on_error: called with a one-line detail when a handler raises; the handler's
        eventfd is then dropped so a broken device cannot spin this thread.
    :param tick: called about every ``tick_s`` seconds (and once at the end), e.g. to pass
        on buffered console output.
    """

    def __init__(
        self,
        on_error: OnError,
        name: str = "vmm-io",
        tick: Callable[[], None] | None = None,
        tick_s: float = 0.05,
    ) -> None:
        self._sel = selectors.DefaultSelector()
        self._wakeup = EventFd()
        self._sel.register(self._wakeup.fd, selectors.EVENT_READ, None)
        self._on_error = on_error
        self._tick = tick
        self._tick_s = tick_s if tick is not None else None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.dispatched = 0

    def add(self, evt: EventFd, handler: Handler) -> None:
        """Serve ``evt`` with ``handler``; call before ``start()``."""
        self._sel.register(evt.fd, selectors.EVENT_READ, (evt, handler))

    def start(self) -> None:
        self._thread.start()

    @property
    def native_id(self) -> int:
        """The kernel's id of the device thread (0 before start)."""
        return self._thread.native_id or 0

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (idempotent); raises IoThreadError if it does not end in time."""
        self._stopping.set()
        self._wakeup.signal()
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise IoThreadError(f"{self._thread.name} still alive {timeout}s after stop")
        self._sel.close()
        self._wakeup.close()

    def _main(self) -> None:
        while not self._stopping.is_set():
            self._serve(self._tick_s)
            if self._tick is not None:
                self._tick()
        # Notifications the guest made just before it stopped (a final status frame
        # followed by a reset) are still served.
        self._serve(0)
        if self._tick is not None:
            self._tick()

    def _serve(self, timeout: float | None) -> None:
        for key, _ in self._sel.select(timeout):
            if key.data is None:
                self._wakeup.consume()
                continue
            evt, handler = key.data
            if evt.consume() == 0:
                continue
            self._run(evt, handler)

    def _run(self, evt: EventFd, handler: Handler) -> None:
        try:
            handler()
            self.dispatched += 1
        except Exception as exc:  # the thread boundary: a device bug must not end I/O silently
            log.exception("device handler failed for %r", evt)
            self._sel.unregister(evt.fd)
            self._on_error(f"device handler failed: {exc!r}")
