"""Stream chunks in, run files out: the collector's state, one transaction per chunk.

A chunk's effects (its raw bytes, the frames it completes, their data files, message
lines, rejections and the run's result fields) are applied together or not at all: if
anything raises half-way, every file is cut back and the in-memory state restored to what
it was before the chunk, so a checkpoint saved afterwards never holds half a chunk. Guest
frames come checked by the wire decoder (:data:`guest.wire.SCHEMAS`); a frame the
collector still fails to handle is counted as an internal error and skipped, so no guest
input can make it raise, and no chunk can kill it again on every restart.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from array import array
from pathlib import Path
from typing import Any

from guest.wire import GUEST_TO_HOST, DecoderStats, Frame, FrameDecoder, FrameType, WireError
from schedlab_shared.bus.vmm import Stream
from schedlab_shared.run_layout import (
    BULK,
    DUMPS,
    GUEST_STDERR,
    GUEST_STDOUT,
    KERNEL_LOG,
    MESSAGES,
    REJECTED,
)

from . import sched
from .crashpoint import crashpoint
from .rundir import STREAM_FILES, RunFiles

__all__ = ("MAX_REJECT_RECORDS", "Ingest")

log = logging.getLogger("collector_proc")

#: Rejections written to rejected.jsonl; later ones are only counted (a guest could send
#: millions). The first _LOGGED of them also go to the collector's log.
MAX_REJECT_RECORDS = 1000
_LOGGED = 20
_STDIO = {FrameType.STDOUT: GUEST_STDOUT, FrameType.STDERR: GUEST_STDERR}
_STATS = operator.attrgetter(*DecoderStats.FIELDS)  # all counters in one C call, per chunk


def _jsonable(value: Any) -> Any:
    """The JSON form of a checked payload (its only non-JSON values are bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class Ingest:
    """The run directory, the frame decoder and what was decoded, restored from a checkpoint.

    :param run_dir: where the files go (reopened at its checkpoint if it has one).
    """

    def __init__(self, run_dir: Path) -> None:
        self.files = RunFiles(run_dir)
        self.cp = self.files.checkpoint
        self.expected = {name: self.cp.next_seq.get(name, 0) for name in STREAM_FILES}
        #: guest messages ready to publish (already in the files); the caller drains it.
        self.outbox: list[dict[str, Any]] = []
        self._lines = self._line_offsets()
        self.decoder = self._restore_decoder(self.cp.decoder_consumed, self.cp.decoder_stats)

    # --- restoring ---
    def _line_offsets(self) -> array[int]:
        """Start offset of each line of messages.jsonl (the messages stay on disk)."""
        offsets, line, pos, size = array("Q"), 0, 0, self.files.sizes[MESSAGES]
        while pos < size:
            block = self.files.read_range(MESSAGES, pos, min(size, pos + (1 << 20)))
            i = block.find(b"\n")
            while i >= 0:
                offsets.append(line)
                line = pos + i + 1
                i = block.find(b"\n", i + 1)
            pos += len(block)
        return offsets

    def _restore_decoder(self, consumed: int, stats: dict[str, int]) -> FrameDecoder:
        dec = FrameDecoder(start_offset=consumed, accept=GUEST_TO_HOST, on_reject=self._on_reject)
        for key, value in stats.items():
            if key in DecoderStats.FIELDS:  # counters carried over from the checkpoint
                setattr(dec.stats, key, int(value))
        # Refill what was buffered but undecoded: it yields no frame, nor rejection, again.
        dec.feed(self.files.read_range(BULK, consumed))
        return dec

    # --- transactions ---
    def process(self, name: str, data: bytes) -> None:
        """Apply chunk ``expected[name]`` of stream ``name``: all its effects or none."""
        mark = self._mark()
        try:
            self.files.append(STREAM_FILES[name], data)
            if name == Stream.BULK:
                crashpoint("chunk")
                for frame in self.decoder.feed(data):
                    self._on_frame(frame)
            self.expected[name] += 1
        except BaseException:
            self._rollback(mark)
            raise

    def finish(self) -> None:
        """End of every stream: recover what the decoder still holds, then mark complete."""
        mark = self._mark()
        try:
            for frame in self.decoder.finish():
                self._on_frame(frame)
            self.cp.complete = True
        except BaseException:
            self._rollback(mark)
            raise

    def _mark(self) -> tuple[Any, ...]:
        cp, dec = self.cp, self.decoder
        return (
            self.files.mark(),
            dec.consumed,
            _STATS(dec.stats),
            len(self._lines),
            dict(self.expected),
            len(self.outbox),
            cp.sys_rdy,
            cp.result,
            cp.exit_code,
            cp.complete,
            cp.rejected,
            cp.internal_errors,
            cp.sched,  # replaced, never mutated, by each frame: a reference is a snapshot
        )

    def _rollback(self, mark: tuple[Any, ...]) -> None:
        files, consumed, stats, lines, expected, outbox, *fields = mark
        self.files.rollback(files)
        self.decoder = self._restore_decoder(
            consumed, dict(zip(DecoderStats.FIELDS, stats, strict=True))
        )
        del self._lines[lines:]
        self.expected = expected
        del self.outbox[outbox:]
        cp = self.cp
        (cp.sys_rdy, cp.result, cp.exit_code, cp.complete, cp.rejected, cp.internal_errors,
         cp.sched) = fields  # fmt: skip

    def save(self) -> None:
        """Write the checkpoint (call between chunks only)."""
        self.cp.next_seq = dict(self.expected)
        self.cp.decoder_consumed = self.decoder.consumed
        self.cp.decoder_stats = self.decoder.stats.as_dict()
        self.files.save()

    def close(self) -> None:
        self.files.close()

    # --- frames ---
    def _on_frame(self, frame: Frame) -> None:
        try:
            record, writes, sched_state = self._render(frame)
            line = json.dumps(record, allow_nan=False).encode() + b"\n"
        except Exception as exc:  # the untrusted-input boundary: count and skip, never die
            self.cp.internal_errors += 1
            log.exception(
                "guest frame %s at bulk offset %d not handled (%s); skipped",
                frame.type.name,
                frame.offset,
                exc,
            )
            return
        for name, data in writes:
            self.files.append(name, data)
        crashpoint("frame")
        if frame.type is FrameType.SYS_RDY:
            self.cp.sys_rdy = record["host_time"]
        elif frame.type is FrameType.RESULT:
            self.cp.result = record["payload"]
        elif frame.type is FrameType.EXIT:
            self.cp.exit_code = frame.payload["code"]
        if sched_state is not None:
            self.cp.sched = sched_state
        self._lines.append(self.files.sizes[MESSAGES])
        self.files.append(MESSAGES, line)
        self.outbox.append(record)

    def _render(
        self, frame: Frame
    ) -> tuple[dict[str, Any], list[tuple[str, bytes]], dict[str, Any] | None]:
        """The frame's message record, file writes and new ``sched`` state (None: unchanged),
        computed without side effects."""
        payload = frame.payload
        record: dict[str, Any] = {
            "index": len(self._lines),
            "type": frame.type.name,
            "host_time": time.time(),
            "offset": frame.offset,
        }
        writes: list[tuple[str, bytes]] = []
        if sched.wants(frame):
            record["payload"], writes, state = sched.render(frame, self.cp.sched, _jsonable)
            if frame.type in (FrameType.SCHED_LOG, FrameType.DUMP):
                record["bytes"] = len(frame.payload["data"])
            return record, writes, state
        if frame.type in _STDIO:
            writes.append((_STDIO[frame.type], payload["data"]))
            record["bytes"] = len(payload["data"])
        elif frame.type is FrameType.DUMP:
            source = payload["source"]
            if source == "kmsg":
                writes.append((KERNEL_LOG, payload["data"]))
            else:
                writes.append((DUMPS, f"=== {source} ===\n".encode() + payload["data"] + b"\n"))
            record["payload"] = {"source": source}
            record["bytes"] = len(payload["data"])
        else:
            record["payload"] = _jsonable(payload)
        return record, writes, None

    def _on_reject(self, offset: int, type_byte: int, err: WireError) -> None:
        self.cp.rejected += 1
        if self.cp.rejected > MAX_REJECT_RECORDS:
            return
        try:
            ftype: str | int = FrameType(type_byte).name
        except ValueError:
            ftype = type_byte
        rec = {
            "offset": offset,
            "type": ftype,
            "kind": err.kind,
            "field": err.field,
            "reason": str(err),
            "host_time": time.time(),
        }
        self.files.append(REJECTED, json.dumps(rec).encode() + b"\n")
        if self.cp.rejected <= _LOGGED:
            log.warning("guest frame rejected at bulk offset %d: %s", offset, err)
        elif self.cp.rejected == _LOGGED + 1:
            log.warning(
                "more guest frames rejected: counted in the decoder stats, listed in rejected.jsonl"
            )

    # --- reading back ---
    @property
    def message_count(self) -> int:
        return len(self._lines)

    def messages(self, start: int, limit: int) -> list[dict[str, Any]]:
        """Decoded guest messages ``start`` .. ``start + limit - 1`` (read from messages.jsonl)."""
        n = len(self._lines)
        start = max(0, start)
        stop = min(n, start + max(0, limit))
        if start >= stop:
            return []
        end = self._lines[stop] if stop < n else self.files.sizes[MESSAGES]
        raw = self.files.read_range(MESSAGES, self._lines[start], end)
        return [json.loads(line) for line in raw.splitlines()]

    def counters(self) -> dict[str, int]:
        """Decoder counters plus the collector's own (the status reply's ``decoder``)."""
        return {
            **self.decoder.stats.as_dict(),
            "gaps": self.cp.gaps,
            "rejected": self.cp.rejected,
            "internal_errors": self.cp.internal_errors,
        }
