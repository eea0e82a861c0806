"""The monitor's sample publisher sends only while a matching SUB listens, and an ordinary
SUB receives the bus's frames from it."""

from __future__ import annotations

import time
from pathlib import Path

import zmq

from monitor_proc.sample_pub import SamplePublisher
from schedlab_shared.bus import monitor as monitor_proto
from schedlab_shared.bus import topics
from schedlab_shared.bus.client import recv_event, subscriber


def _settle(pub: SamplePublisher, topic: str, want: bool) -> None:
    deadline = time.monotonic() + 5.0
    while pub.listened(topic) != want and time.monotonic() < deadline:
        if pub.socket.poll(50):
            pub.handle_ready()
    assert pub.listened(topic) == want


def test_publishes_only_to_a_matching_subscriber(tmp_path: Path) -> None:
    ctx = zmq.Context()
    pub = SamplePublisher(ctx, f"ipc://{tmp_path}/pub")
    topic = topics.monitor_sample("vm1")
    body = {"elapsed_ms": 1.0, "cpus": [{"cpu": 0, "nr_running": 1}], "monitor": "monitor"}
    try:
        assert pub.publish(topic, body) is False  # nobody listens: nothing packed or sent
        other = subscriber(ctx, pub.endpoint, topics.monitor_sample("vm2"))
        sub = subscriber(ctx, pub.endpoint, topic)
        _settle(pub, topic, True)
        assert not pub.listened(topics.monitor_sample("vm3"))
        assert pub.publish(topic, body) is True
        assert sub.poll(2000)
        got_topic, msg = recv_event(sub, monitor_proto.Sample)
        assert got_topic == topic and msg.cpus == body["cpus"] and msg.monitor == "monitor"
        assert not other.poll(100)  # the other VM's subscriber gets nothing
        sub.close(0)  # its unsubscription reaches the publisher: sending stops again
        _settle(pub, topic, False)
        assert pub.publish(topic, body) is False
        other.close(0)
    finally:
        pub.close()
        ctx.term()
