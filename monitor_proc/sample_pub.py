"""The monitor's sample publisher: the bus's ``[topic, msgpack body]`` frames (as
:class:`schedlab_shared.bus.client.Publisher` sends them), packed only while someone listens.

A PUB socket packs and sends every sample even with no subscriber; most runs have none (the
file is the record), and packing a full sched_ext sample costs about a tenth of the
monitor's CPU time at 100 Hz. An XPUB socket is a PUB that also hands us each subscription
and unsubscription, so the monitor knows whether any subscriber's prefix matches its topic.
Subscribers are ordinary SUB sockets: nothing changes on their side.
"""

from __future__ import annotations

import zmq

from schedlab_shared.bus.client import Publisher

__all__ = ("SamplePublisher",)

_MAX_DRAIN = 64  # subscription messages handled per call (the rest wait for the next one)


class SamplePublisher(Publisher):
    """A bound XPUB that counts the subscriptions matching each topic it publishes.

    Without ``XPUB_VERBOSE`` zmq reports a prefix's first subscription and its last
    unsubscription only, so a set of prefixes is an exact picture.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        super().__init__(ctx, endpoint, zmq.XPUB)
        self._prefixes: set[bytes] = set()
        self._wanted: dict[bytes, bool] = {}  # topic -> some prefix matches it

    def handle_ready(self) -> None:
        """Take the subscription messages waiting on the socket (call when it polls
        readable): ``\\x01prefix`` subscribes, ``\\x00prefix`` unsubscribes."""
        for _ in range(_MAX_DRAIN):
            try:
                msg = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self._prefixes.add(msg[1:])
            elif msg[:1] == b"\x00":
                self._prefixes.discard(msg[1:])
            self._wanted.clear()

    def listened(self, topic: str) -> bool:
        """Whether a subscriber would receive ``topic`` now."""
        key = topic.encode()
        hit = self._wanted.get(key)
        if hit is None:
            hit = self._wanted[key] = any(key.startswith(p) for p in self._prefixes)
        return hit

    def publish(self, topic: str, body: dict) -> bool:  # type: ignore[override]
        """Send ``body`` on ``topic`` if anyone listens; True if it was sent."""
        if not self.listened(topic):
            return False
        super().publish(topic, body)
        return True
