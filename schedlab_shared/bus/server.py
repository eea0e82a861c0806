"""The control-channel dispatcher: ROUTER socket, decode -> look up -> validate -> execute.

It is the only catch-all of a process: handlers raise BusError for expected failures, and
anything else becomes an INTERNAL reply instead of killing the process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq

from .codec import BusError, Message, Status, decode_request, encode_reply

__all__ = ("ControlServer", "Handler")

log = logging.getLogger(__name__)
Handler = Callable[[Any], Message | dict | None]


class ControlServer:
    """Answers requests on a bound ROUTER socket; poll ``socket`` and call ``handle_ready``."""

    def __init__(self, ctx: zmq.Context, endpoint: str, handlers: dict[type[Message], Handler]):
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._handlers = handlers
        self.dropped = 0

    def handle_ready(self) -> int:
        """Serve every request waiting on the socket; returns how many were served."""
        served = 0
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return served
            if len(frames) != 2:
                self.dropped += 1  # garbage framing: nothing to reply to
                continue
            identity, data = frames
            self.socket.send_multipart([identity, self._dispatch(data)])
            served += 1

    def _dispatch(self, data: bytes) -> bytes:
        req_id = -1
        try:
            req_id, msg = decode_request(data)
            handler = self._handlers.get(type(msg))
            if handler is None:
                raise BusError(Status.UNKNOWN_TYPE, f"{msg.TYPE} is not served here")
            return encode_reply(req_id, Status.OK, "", handler(msg))
        except BusError as exc:
            return encode_reply(req_id, exc.status, exc.reason)
        except Exception as exc:  # the dispatcher is the process's only catch-all
            log.exception("handler failed")
            return encode_reply(req_id, Status.INTERNAL, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.socket.close(0)
