"""Request client and pub/sub helpers for the schedlab bus."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import zmq

from .codec import (
    BusError,
    Message,
    Status,
    decode_reply,
    encode_request,
    from_body,
    pack,
    to_body,
    unpack,
)

__all__ = ("BusClient", "Publisher", "subscriber", "recv_event")


class BusClient:
    """A DEALER that sends one request at a time and waits for the reply with a timeout.

    Replies are matched by id, so a late reply to a timed-out request is discarded.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, timeout_s: float = 2.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._ctx = ctx
        self._ids = itertools.count(int.from_bytes(os.urandom(3), "little"))
        self._sock = self._connect()

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    def request(self, msg: Message, timeout_s: float | None = None) -> Any:
        """Send ``msg``; return its reply (the REPLY dataclass if declared, else the body map)."""
        req_id = next(self._ids) & 0x7FFFFFFF
        self._sock.send(encode_request(req_id, msg))
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._sock.poll(int(remaining * 1000) + 1):
                if time.monotonic() >= deadline:
                    raise BusError(Status.TIMEOUT, f"{msg.TYPE}: no reply from {self.endpoint}")
                continue
            reply = decode_reply(self._sock.recv())
            if reply.id != req_id:
                continue  # stale reply to an earlier, timed-out request
            if not reply.ok():
                raise BusError(reply.status, reply.reason)
            return from_body(msg.REPLY, reply.body) if msg.REPLY else reply.body

    def close(self) -> None:
        self._sock.close(0)


class Publisher:
    """A bound PUB socket that sends ``[topic, body]`` frames.

    :param socket_type: ``zmq.PUB``, or ``zmq.XPUB`` for a publisher that also reads its
        subscriptions (:class:`monitor_proc.sample_pub.SamplePublisher`).
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, socket_type: int = zmq.PUB) -> None:
        self.socket = ctx.socket(socket_type)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 100_000)
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish(self, topic: str, msg: Message | dict) -> None:
        body = to_body(msg) if isinstance(msg, Message) else msg
        self.socket.send_multipart([topic.encode(), pack(body)])

    def close(self) -> None:
        self.socket.close(0)


def subscriber(ctx: zmq.Context, endpoint: str, *prefixes: str) -> zmq.Socket:
    """A SUB connected to ``endpoint`` for the topic prefixes given."""
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    for p in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, p.encode())
    sock.connect(endpoint)
    return sock


def recv_event(sock: zmq.Socket, cls: type[Message] | None = None) -> tuple[str, Any]:
    """Receive one ``[topic, body]`` event (non-blocking caller: poll first)."""
    frames = sock.recv_multipart()
    if len(frames) != 2:
        raise BusError(Status.BAD_MESSAGE, f"event with {len(frames)} frames")
    body = unpack(frames[1])
    return frames[0].decode(errors="replace"), (from_body(cls, body) if cls else body)
