"""Retained, sequence-numbered chunks of one guest stream, so a restarted subscriber can
ask for what it missed (the zguide "clone" pattern: live PUB plus replay by request)."""

from __future__ import annotations

from collections import deque

__all__ = ("StreamLog", "ReplayGone")

DEFAULT_RETAIN_BYTES = 256 << 20


class ReplayGone(Exception):
    """The requested chunks were evicted."""


class StreamLog:
    def __init__(self, retain_bytes: int = DEFAULT_RETAIN_BYTES) -> None:
        self.retain_bytes = retain_bytes
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._held = 0
        self.next_seq = 0
        self.total_bytes = 0

    @property
    def first_seq(self) -> int:
        return self._chunks[0][0] if self._chunks else self.next_seq

    def append(self, data: bytes) -> int:
        """Keep ``data`` as the next chunk; returns its sequence number."""
        seq = self.next_seq
        self._chunks.append((seq, data))
        self.next_seq += 1
        self._held += len(data)
        self.total_bytes += len(data)
        while self._held > self.retain_bytes and len(self._chunks) > 1:
            self._held -= len(self._chunks.popleft()[1])
        return seq

    def replay(self, from_seq: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Chunks from ``from_seq`` on, at least one if any, about ``max_bytes`` in all."""
        if from_seq < self.first_seq:
            raise ReplayGone(f"chunks before {self.first_seq} were evicted (asked {from_seq})")
        if from_seq >= self.next_seq:
            return []
        start = from_seq - self.first_seq
        out: list[tuple[int, bytes]] = []
        size = 0
        for i in range(start, len(self._chunks)):
            seq, data = self._chunks[i]
            if out and size + len(data) > max_bytes:
                break
            out.append((seq, data))
            size += len(data)
        return out
