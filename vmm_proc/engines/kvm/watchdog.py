"""Watchdog: calls ``on_expire`` once if the VM is still running at its deadline."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ("Watchdog",)


class Watchdog:
    """A cancellable one-shot deadline on its own thread (named ``vmm-watchdog``).

    :param timeout_s: seconds from ``start()`` to the call of ``on_expire``.
    :param on_expire: runs on the watchdog thread, at most once, unless ``cancel()`` came first.
    """

    def __init__(self, timeout_s: float, on_expire: Callable[[], None]) -> None:
        self.timeout_s = timeout_s
        self.fired = False
        self._on_expire = on_expire
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._main, name="vmm-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self, join_timeout: float = 5.0) -> None:
        """Disarm (idempotent); joins unless called from the watchdog thread itself."""
        self._cancelled.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(join_timeout)

    def _main(self) -> None:
        if not self._cancelled.wait(self.timeout_s):
            self.fired = True
            self._on_expire()
