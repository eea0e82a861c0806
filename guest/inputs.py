"""The inputs phase: what this run is asked to do, sent by the host after SYS_RDY.

The host sends the run document and the run's files over the bulk port
(:mod:`guest.transfer`); :func:`receive_inputs` reads them (:mod:`guest.receiver`: the
entropy goes into the CRNG first, the files under ``/run/schedlab/inputs``), answers with one
INPUTS_ACK frame and returns them. Nothing of the run comes from the kernel command line.
"""

from __future__ import annotations

from guest import receiver, transfer
from guest.wire import FrameType

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading

    from guest.env import Env
    from guest.receiver import Received
    from guest.reporter import Reporter

__all__ = ("InputError", "receive_inputs")

InputError = receiver.InputError


def receive_inputs(env: Env, out: Reporter, stop: threading.Event) -> Received:
    """Receive the run's inputs and acknowledge them.

    :param out: the open bulk port (read for the inputs, written for the answer).
    :param stop: set on a host shutdown request: the wait ends.
    :raises InputError: nothing usable arrived; the negative INPUTS_ACK is already sent.
    """
    assert out.bulk is not None
    try:
        got = receiver.receive(
            out.bulk.fd, env.root, first_timeout_s=env.inputs_timeout_s, stop=stop
        )
    except InputError as e:
        out.send(FrameType.INPUTS_ACK, transfer.ack_error(str(e)))
        raise
    out.send(
        FrameType.INPUTS_ACK,
        transfer.ack_ok(got.installed, got.bytes, got.recv_ns, got.entropy, got.stats),
    )
    return got
