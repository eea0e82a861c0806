"""The VMM's vCPU thread run times, asked for without waiting.

A blocking request sleeps until the reply comes, and each sleep and wake-up of the sample
loop costs more CPU than the request itself (about 60 us on these machines). Here the
request goes out in one sample and its reply, long there by then, is taken without
blocking in a later one: the loop's only sleep stays its sleep between samples. A reading
is thus up to one interval older than the sample that carries it; its ``at_s`` is the
VMM's own time of reading.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

import zmq

from schedlab_shared.bus import vmm as vmm_proto
from schedlab_shared.bus.codec import BusError, Status, decode_reply, encode_request, from_body

__all__ = ("VcpuTimesAsker",)

log = logging.getLogger("monitor_proc")


class VcpuTimesAsker:
    """One outstanding ``VcpuTimes`` request at a time on a DEALER of its own.

    :param every_s: least time between two requests.
    :param timeout_s: an unanswered request is given up after this long (its late reply,
        if any, is told apart by its id and dropped), and the next one is sent.
    """

    def __init__(
        self, ctx: zmq.Context, endpoint: str, every_s: float, timeout_s: float = 0.5
    ) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.enabled = True  # False once the VMM said it cannot tell
        self._ids = itertools.count(int.from_bytes(os.urandom(3), "little"))
        self._pending: int | None = None
        self._sent = -every_s  # monotonic time of the last request

    def poll(self, now: float | None = None) -> dict[str, Any] | None:
        """The reading that arrived since the last call, if any (never blocks); then a new
        request when one is due. None also once the VMM cannot tell (``enabled`` False)."""
        if not self.enabled:
            return None
        now = time.monotonic() if now is None else now
        got = self._take()
        if self._pending is not None and now - self._sent > self.timeout_s:
            log.debug("vCPU times: no reply within %.1f s", self.timeout_s)
            self._pending = None
        if self.enabled and self._pending is None and now - self._sent >= self.every_s:
            self._pending = next(self._ids) & 0x7FFFFFFF
            self._sent = now
            self.sock.send(encode_request(self._pending, vmm_proto.VcpuTimes()))
        return got

    def _take(self) -> dict[str, Any] | None:
        got = None
        while True:
            try:
                data = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return got
            try:
                reply = decode_reply(data)
                if reply.id != self._pending:
                    continue  # the late reply to a request given up
                self._pending = None
                if not reply.ok():
                    raise BusError(reply.status, reply.reason)
                r = from_body(vmm_proto.VcpuTimesReply, reply.body)
            except BusError as exc:
                if exc.status in (Status.NOT_FOUND, Status.UNKNOWN_TYPE):
                    log.info("no vCPU run times: %s", exc)
                    self.enabled = False
                    return None
                log.debug("vCPU times: %s", exc)
                continue
            got = {"at_s": r.at_s, "run_ns": list(r.run_ns), "shared": r.shared}

    def close(self) -> None:
        self.sock.close(0)
