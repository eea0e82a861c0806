import threading

import msgpack
import pytest
import zmq

from schedlab_shared.bus import vmm
from schedlab_shared.bus.client import BusClient, Publisher, recv_event, subscriber
from schedlab_shared.bus.codec import (
    BusError,
    Status,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    from_body,
)
from schedlab_shared.bus.server import ControlServer


def test_request_round_trip() -> None:
    req_id, msg = decode_request(encode_request(7, vmm.Replay("bulk", 3, 100)))
    assert req_id == 7 and msg == vmm.Replay("bulk", 3, 100)


@pytest.mark.parametrize(
    ("env", "status"),
    [
        (b"\xc1", Status.BAD_MESSAGE),
        ({"v": 1, "type": "vmm.stop", "body": {}}, Status.BAD_MESSAGE),  # no id
        ({"v": 99, "id": 1, "type": "vmm.stop", "body": {}}, Status.BAD_MESSAGE),
        ({"v": 1, "id": 1, "type": "nope", "body": {}}, Status.UNKNOWN_TYPE),
        ({"v": 1, "id": 1, "type": "vmm.replay", "body": {"stream": "x"}}, Status.BAD_MESSAGE),
        (
            {"v": 1, "id": 1, "type": "vmm.replay", "body": {"stream": 1, "from_seq": 0}},
            Status.BAD_MESSAGE,
        ),
        ({"v": 1, "id": 1, "type": "vmm.replay", "body": []}, Status.BAD_MESSAGE),
    ],
)
def test_bad_requests_are_typed_errors(env, status) -> None:  # noqa: ANN001
    data = env if isinstance(env, bytes) else msgpack.packb(env)
    with pytest.raises(BusError) as exc:
        decode_request(data)
    assert exc.value.status is status


def test_optional_and_float_fields() -> None:
    s = from_body(
        vmm.StatusReply,
        {
            "state": "running",
            "engine": "qemu",
            "run_id": "r",
            "started_at": 3,
            "layout": [],
            "streams": {},
        },
    )
    assert s.started_at == 3 and s.exit_reason == ""


def test_reply_envelope() -> None:
    r = decode_reply(encode_reply(5, Status.GONE, "evicted"))
    assert (r.id, r.status, r.reason, r.ok()) == (5, Status.GONE, "evicted", False)


def _serve(server: ControlServer, n: int) -> threading.Thread:
    def loop() -> None:
        served = 0
        while served < n and server.socket.poll(3000):
            served += server.handle_ready()

    t = threading.Thread(target=loop)
    t.start()
    return t


def test_server_client_and_handler_errors() -> None:
    ctx = zmq.Context()

    def stop(msg: vmm.Stop) -> vmm.Empty:
        if msg.reason == "boom":
            raise RuntimeError("kaput")
        if msg.reason == "no":
            raise BusError(Status.NOT_ALLOWED, "not now")
        return vmm.Empty()

    server = ControlServer(ctx, "inproc://ctl", {vmm.Stop: stop})
    client = BusClient(ctx, "inproc://ctl", timeout_s=2)
    t = _serve(server, 4)
    try:
        assert client.request(vmm.Stop("stopped")) == vmm.Empty()
        with pytest.raises(BusError) as e1:
            client.request(vmm.Stop("no"))
        assert e1.value.status is Status.NOT_ALLOWED
        with pytest.raises(BusError) as e2:
            client.request(vmm.Stop("boom"))
        assert e2.value.status is Status.INTERNAL and "kaput" in e2.value.reason
        with pytest.raises(BusError) as e3:
            client.request(vmm.Status_())
        assert e3.value.status is Status.UNKNOWN_TYPE
    finally:
        t.join()
        client.close()
        server.close()
        ctx.term()


def test_client_times_out_and_ignores_stale_replies() -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://slow")
    client = BusClient(ctx, "inproc://slow", timeout_s=0.1)
    with pytest.raises(BusError) as exc:
        client.request(vmm.Stop())
    assert exc.value.status is Status.TIMEOUT
    ident, first = router.recv_multipart()
    first_id, _ = decode_request(first)
    t = threading.Thread(
        target=lambda: client_result.append(client.request(vmm.Stop(), timeout_s=2))
    )
    client_result: list = []
    t.start()
    ident, second = router.recv_multipart()
    second_id, _ = decode_request(second)
    router.send_multipart([ident, encode_reply(first_id)])  # stale: must be skipped
    router.send_multipart([ident, encode_reply(second_id, body=vmm.Empty())])
    t.join()
    assert client_result == [vmm.Empty()]
    client.close()
    router.close(0)
    ctx.term()


def test_pub_sub_round_trip() -> None:
    ctx = zmq.Context()
    pub = Publisher(ctx, "inproc://pub")
    sub = subscriber(ctx, "inproc://pub", "vm.a.")
    import time

    deadline = time.monotonic() + 2
    got = None
    while got is None and time.monotonic() < deadline:
        pub.publish("vm.b.state", vmm.VmStateEvent("running"))
        pub.publish("vm.a.stream.console", vmm.StreamChunk(0, b"hi"))
        if sub.poll(50):
            got = recv_event(sub, vmm.StreamChunk)
    assert got == ("vm.a.stream.console", vmm.StreamChunk(0, b"hi"))
    sub.close(0)
    pub.close()
    ctx.term()
