"""StreamBatcher: coalesces the UART's one-byte writes into chunks before they reach hooks.

A 16550 hands over one byte per vCPU exit; passing each on costs the service a wakeup and
a publish. Chunks end at a newline or ``max_bytes``; a partial line waits at most until
the next ``flush()`` (the device thread calls it every tick, the teardown at the end).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ("StreamBatcher",)

Sink = Callable[[str, bytes], None]


class StreamBatcher:
    """Per-stream buffers in front of ``sink``; order within a stream is preserved.

    :param sink: receives ``(stream, chunk)``; called with no buffer lock held.
    :param max_bytes: a buffer this full is passed on at once.
    """

    def __init__(self, sink: Sink, max_bytes: int = 4096) -> None:
        self._sink = sink
        self._max = max_bytes
        self._pending: dict[str, bytearray] = {}
        self._lock = threading.Lock()
        # Held from taking a buffer until the sink returns, so two flushes cannot reorder.
        self._emit_lock = threading.Lock()

    def write(self, stream: str, data: bytes) -> None:
        with self._lock:
            buf = self._pending.setdefault(stream, bytearray())
            buf += data
            full = b"\n" in data or len(buf) >= self._max
        if full:
            self.flush(stream)

    def flush(self, stream: str | None = None) -> None:
        """Pass on what ``stream`` (default: every stream) holds."""
        with self._emit_lock:
            with self._lock:
                names = [stream] if stream is not None else list(self._pending)
                chunks = [(n, bytes(self._pending.pop(n, b""))) for n in names]
            for name, chunk in chunks:
                if chunk:
                    self._sink(name, chunk)
